//! GGUF headers (`lm::gguf::inspect`): any bytes give an error or a header whose every
//! tensor lies inside the file, never a panic; and a header it accepts is one candle's own
//! reader then reads without panicking either (it divides by the alignment, for one).
#![no_main]
use candle_core::quantized::gguf_file;
use deepspark::lm::gguf::inspect_bytes;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(header) = inspect_bytes(data) {
        for t in &header.tensors {
            assert!(header.data_offset + t.offset + t.bytes <= data.len() as u64);
        }
        let _ = gguf_file::Content::read(&mut std::io::Cursor::new(data));
    }
});
