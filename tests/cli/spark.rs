//! The Spark job (examples/spark/) on local[2]: mining three repositories gives the same
//! records as `deepspark mine` on each, and scoring gives what `deepspark score --jsonl`
//! gives serially. Needs pyspark and Java: `.ci/run` installs them and sets
//! DEEPSPARK_SPARK_PYTHON to that Python; elsewhere the test says how and skips.

#[test]
fn the_spark_job_equals_the_serial_commands() {
    let Some(python) = std::env::var_os("DEEPSPARK_SPARK_PYTHON") else {
        eprintln!(
            "skipped: set DEEPSPARK_SPARK_PYTHON to a Python with pyspark (python3 -m venv v && v/bin/pip install pyspark; Java 17)"
        );
        return;
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spark/test_job.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg("--deepspark")
        .arg(assert_cmd::cargo::cargo_bin("deepspark"))
        .env_remove("DEEPSPARK_MODEL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mine: ") && stdout.contains("score: "), "{stdout}");
}
