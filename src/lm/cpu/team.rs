//! A team of threads for the work of one token (decoding): the calling thread and helpers
//! that spin between jobs instead of going to sleep, so a product of a few hundred
//! microseconds does not wait tens of them for a sleeping thread to wake, as it does on
//! rayon's pool (which parks its idle threads). Prefill, whose products are long, stays on
//! the pool. A helper that has had no job for [`SPIN`] parks until the next one.
//!
//! [`Team::run`] splits a job into parts that the threads claim one at a time; it returns once
//! every part has run, so a job may borrow from the caller's stack. It does not nest: a job
//! that calls `run` on the same team, or a second caller while a job runs, runs its parts on
//! its own thread.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a helper spins after its last job before it parks: longer than the gaps between
/// one token's products (norms, rotary angles, adding rows), shorter than anything a user
/// would notice a core busy for.
const SPIN: Duration = Duration::from_millis(2);

/// The bytes of a layer's output matrix from which a network gets a team: its products are
/// then long enough for two threads to share (1.5B-1.7B files: 1.3-2.4 MB, decode 5% faster
/// with the team). Below (SmolLM2-135M: 0.2 MB), the team decoded 8-12% slower than rayon's
/// pool in alternating runs: there the calling thread often finishes a product alone before
/// the pool's sleeping thread wakes, which costs nothing, while a spinning helper takes a core
/// from the work between products. A network uses the team for every product or for none:
/// a helper spinning beside the pool's threads would take a core from them.
pub(super) const MIN_BYTES: usize = 1 << 20;

type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// The calling thread and `threads - 1` helpers.
pub(super) struct Team {
    shared: Arc<Shared>,
    helpers: Vec<(JoinHandle<()>, Arc<AtomicBool>)>,
    /// Set while a job runs: a second caller runs its job alone.
    running: AtomicBool,
}

struct Shared {
    /// The job's epoch (high 32 bits), its number of parts (next 16) and the next part to
    /// claim (low 16), in one word, so that a claim is of one job's part or fails.
    ticket: AtomicU64,
    /// The job of the current epoch: a pointer to the caller's `Job`, valid while any of its
    /// parts is claimed and not finished.
    job: AtomicPtr<Job<'static>>,
    finished: AtomicUsize,
    /// What the first part to panic in the current job panicked with.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    stop: AtomicBool,
}

const PART_BITS: u32 = 16;
const MAX_PARTS: usize = (1 << PART_BITS) - 1;

fn parts_of(ticket: u64) -> usize {
    ((ticket >> PART_BITS) & MAX_PARTS as u64) as usize
}

fn next_of(ticket: u64) -> usize {
    (ticket & MAX_PARTS as u64) as usize
}

impl Shared {
    /// Claims and runs parts of the current job until none is left; whether it ran any.
    fn work(&self) -> bool {
        let mut ran = false;
        let mut ticket = self.ticket.load(Ordering::Acquire);
        while next_of(ticket) < parts_of(ticket) {
            match self
                .ticket
                .compare_exchange_weak(ticket, ticket + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: the caller stored the job before the ticket that made this claim
                    // possible, and waits in `run` until this part has finished.
                    let job = unsafe { *self.job.load(Ordering::Acquire) };
                    let part = next_of(ticket);
                    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(part))) {
                        // Kept, not dropped here: dropping a payload may itself panic.
                        let mut first = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                        if first.is_none() {
                            *first = Some(payload);
                        } else {
                            std::mem::forget(payload);
                        }
                    }
                    self.finished.fetch_add(1, Ordering::Release);
                    ran = true;
                    ticket = self.ticket.load(Ordering::Acquire);
                }
                Err(now) => ticket = now,
            }
        }
        ran
    }
}

impl Team {
    /// A team of `threads` (the caller counts as one); `None` for fewer than two, or when no
    /// helper thread can be started.
    pub(super) fn new(threads: usize) -> Option<Team> {
        if threads < 2 {
            return None;
        }
        let shared = Arc::new(Shared {
            ticket: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            finished: AtomicUsize::new(0),
            panic: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let mut helpers = Vec::new();
        for i in 1..threads {
            let (shared, asleep) = (Arc::clone(&shared), Arc::new(AtomicBool::new(false)));
            let flag = Arc::clone(&asleep);
            let spawned = std::thread::Builder::new()
                .name(format!("deepspark-lm-{i}"))
                .spawn(move || help(&shared, &flag));
            match spawned {
                Ok(handle) => helpers.push((handle, asleep)),
                Err(_) => break,
            }
        }
        if helpers.is_empty() {
            return None;
        }
        Some(Team {
            shared,
            helpers,
            running: AtomicBool::new(false),
        })
    }

    /// Threads in the team, the caller's included.
    pub(super) fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `job(i)` for every `i` in `0..parts`, each once, on the team's threads; returns
    /// when all have run. A panic in a part is raised here, with its payload, after every part
    /// has finished. A job that calls `run` again, or a second caller while a job runs, runs
    /// its parts on its own thread.
    pub(super) fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        if parts <= 1
            || parts > MAX_PARTS
            || self
                .running
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return (0..parts).for_each(job);
        }
        let shared = &*self.shared;
        let job: Job = job;
        shared.finished.store(0, Ordering::Relaxed);
        // SAFETY (of erasing the lifetime): helpers call the job only for a part they claimed,
        // and this function neither returns nor unwinds before every part has finished (the
        // `Finish` guard below waits for them).
        let erased: *const Job<'static> = (&job as *const Job).cast();
        shared.job.store(erased.cast_mut(), Ordering::Release);
        let epoch = (shared.ticket.load(Ordering::Relaxed) >> 32) + 1;
        shared
            .ticket
            .store(epoch << 32 | (parts as u64) << PART_BITS, Ordering::SeqCst);
        let finish = Finish { team: self, parts };
        for (handle, asleep) in &self.helpers {
            if asleep.load(Ordering::SeqCst) {
                handle.thread().unpark();
            }
        }
        shared.work();
        finish.wait();
        // Taken before the next caller may come in (when `finish` is dropped).
        let payload = shared.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(finish);
        if let Some(payload) = payload {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Waits, when dropped, until every part of the team's current job has finished, then lets
/// the next caller in: [`Team::run`] cannot leave while a helper may still call its job.
struct Finish<'a> {
    team: &'a Team,
    parts: usize,
}

impl Finish<'_> {
    fn wait(&self) {
        while self.team.shared.finished.load(Ordering::Acquire) < self.parts {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.wait();
        self.team.running.store(false, Ordering::Release);
    }
}

/// A helper's life: claim parts while there are any, spin for [`SPIN`] after the last one,
/// then park until woken.
fn help(shared: &Shared, asleep: &AtomicBool) {
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.work() {
            idle_since = Instant::now();
            continue;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(256) {
            std::hint::spin_loop();
            continue;
        }
        if idle_since.elapsed() < SPIN {
            continue;
        }
        asleep.store(true, Ordering::SeqCst);
        // A job published after the flag was set unparks this thread; one published before
        // is seen here.
        let ticket = shared.ticket.load(Ordering::SeqCst);
        if next_of(ticket) >= parts_of(ticket) && !shared.stop.load(Ordering::SeqCst) {
            std::thread::park();
        }
        asleep.store(false, Ordering::SeqCst);
        idle_since = Instant::now();
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (handle, _) in self.helpers.drain(..) {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_on_every_job() {
        let team = Team::new(3).expect("threads start");
        assert_eq!(team.threads(), 3);
        for parts in [0, 1, 2, 7, 64, 1000] {
            let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            team.run(parts, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1), "{parts} parts");
        }
    }

    #[test]
    fn helpers_that_parked_wake_for_the_next_job() {
        let team = Team::new(2).expect("threads start");
        let on_helper = AtomicUsize::new(0);
        let caller = std::thread::current().id();
        for _ in 0..3 {
            std::thread::sleep(SPIN * 5);
            let parts = AtomicUsize::new(0);
            team.run(64, &|_| {
                parts.fetch_add(1, Ordering::Relaxed);
                if std::thread::current().id() != caller {
                    on_helper.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_micros(200));
            });
            assert_eq!(parts.load(Ordering::Relaxed), 64);
        }
        assert!(
            on_helper.load(Ordering::Relaxed) > 0,
            "the parked helper never took a part"
        );
    }

    #[test]
    fn two_callers_at_once_each_get_their_parts_run() {
        let team = Team::new(2).expect("threads start");
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let sum = AtomicUsize::new(0);
                        team.run(16, &|i| {
                            sum.fetch_add(i, Ordering::Relaxed);
                        });
                        assert_eq!(sum.load(Ordering::Relaxed), (0..16).sum::<usize>());
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_part_is_raised_to_the_caller_after_the_others_finish() {
        let team = Team::new(2).expect("threads start");
        let done = AtomicUsize::new(0);
        let raised = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(32, &|i| {
                if i == 5 {
                    panic!("part 5");
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        }));
        let payload = raised.expect_err("the part's panic reaches the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"part 5"));
        assert_eq!(done.load(Ordering::Relaxed), 31);
        // The team still works after it.
        let sum = AtomicUsize::new(0);
        team.run(8, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 28);
    }
}
