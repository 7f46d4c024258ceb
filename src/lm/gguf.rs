//! GGUF header validation: walks a GGUF file's header (magic, version, counts, every
//! metadata value, the tensor table) against the file's size before anything sized by the
//! file is allocated, and checks that every tensor's bytes lie inside the file.
//!
//! A string or array length is refused when the bytes it needs are not left in the file,
//! a tensor when its type is unknown, its dimensions are not sane, or its data would run
//! past the end of the file. Only then does candle's reader (`gguf_file::Content::read`)
//! build the metadata, and only then are tensors read. This module does not build models,
//! tokenizers or templates (see `model/`, `tokenizer.rs`, `chat.rs`).

use std::io::{BufReader, Read, Seek, SeekFrom};

/// "GGUF" read as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// Longest metadata key or tensor name accepted (llama.cpp's are under 100 bytes).
const MAX_NAME: u64 = 64 * 1024;
/// Nesting of arrays inside arrays; real files use none.
const MAX_DEPTH: usize = 4;
/// GGML tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Largest element count of one tensor (2^48), so that products and byte sizes never overflow.
const MAX_ELEMENTS: u64 = 1 << 48;
/// GGUF's default alignment of the tensor data section.
const DEFAULT_ALIGNMENT: u64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read the file")]
    Io(#[from] std::io::Error),
    #[error("not a GGUF file (magic {0:#010x}, expected \"GGUF\")")]
    Magic(u32),
    #[error("GGUF version {0} is not supported (1, 2 and 3 are)")]
    Version(u32),
    #[error("truncated GGUF file: {what} at byte {at} needs {needed} bytes, {left} are left")]
    Truncated {
        what: String,
        at: u64,
        needed: u64,
        left: u64,
    },
    #[error("invalid GGUF file at byte {at}: {what}")]
    Invalid { at: u64, what: String },
}

/// A tensor type candle can load, with the size of one block on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorType {
    /// GGML's type id, as stored in the file.
    pub id: u32,
    pub name: &'static str,
    /// Elements per block.
    pub block: u64,
    /// Bytes per block.
    pub bytes: u64,
}

/// The GGML types candle 0.11 reads (`GgmlDType::from_u32`), with ggml's block layout.
pub const TENSOR_TYPES: [TensorType; 15] = [
    TensorType {
        id: 0,
        name: "F32",
        block: 1,
        bytes: 4,
    },
    TensorType {
        id: 1,
        name: "F16",
        block: 1,
        bytes: 2,
    },
    TensorType {
        id: 2,
        name: "Q4_0",
        block: 32,
        bytes: 18,
    },
    TensorType {
        id: 3,
        name: "Q4_1",
        block: 32,
        bytes: 20,
    },
    TensorType {
        id: 6,
        name: "Q5_0",
        block: 32,
        bytes: 22,
    },
    TensorType {
        id: 7,
        name: "Q5_1",
        block: 32,
        bytes: 24,
    },
    TensorType {
        id: 8,
        name: "Q8_0",
        block: 32,
        bytes: 34,
    },
    TensorType {
        id: 9,
        name: "Q8_1",
        block: 32,
        bytes: 36,
    },
    TensorType {
        id: 10,
        name: "Q2_K",
        block: 256,
        bytes: 84,
    },
    TensorType {
        id: 11,
        name: "Q3_K",
        block: 256,
        bytes: 110,
    },
    TensorType {
        id: 12,
        name: "Q4_K",
        block: 256,
        bytes: 144,
    },
    TensorType {
        id: 13,
        name: "Q5_K",
        block: 256,
        bytes: 176,
    },
    TensorType {
        id: 14,
        name: "Q6_K",
        block: 256,
        bytes: 210,
    },
    TensorType {
        id: 15,
        name: "Q8_K",
        block: 256,
        bytes: 292,
    },
    TensorType {
        id: 30,
        name: "BF16",
        block: 1,
        bytes: 2,
    },
];

/// One entry of the tensor table, checked against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub kind: TensorType,
    /// Dimensions as GGUF stores them (innermost first).
    pub dims: Vec<u64>,
    /// Offset from the start of the tensor data section.
    pub offset: u64,
    /// Bytes of data on disk.
    pub bytes: u64,
}

/// What the header says, once every part of it has been checked.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub metadata_count: u64,
    /// `general.architecture`, when the file names one.
    pub architecture: Option<String>,
    pub tensors: Vec<TensorEntry>,
    /// Where the tensor data section starts.
    pub data_offset: u64,
    pub file_size: u64,
}

impl Header {
    /// Bytes of tensor data in the file.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Checks a whole GGUF header read from `reader` (positioned at the file's start).
pub fn inspect<R: Read + Seek>(reader: R) -> Result<Header, GgufError> {
    let mut walker = Walker::new(reader)?;
    walker.header()
}

/// [`inspect`] on bytes in memory (tests and the fuzz target).
pub fn inspect_bytes(bytes: &[u8]) -> Result<Header, GgufError> {
    inspect(std::io::Cursor::new(bytes))
}

/// GGUF value types (the spec's `gguf_metadata_value_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Fixed(u64),
    Bool,
    String,
    Array,
}

fn value_type(id: u32) -> Option<ValueType> {
    Some(match id {
        0 | 1 => ValueType::Fixed(1),
        2 | 3 => ValueType::Fixed(2),
        4..=6 => ValueType::Fixed(4),
        7 => ValueType::Bool,
        8 => ValueType::String,
        9 => ValueType::Array,
        10..=12 => ValueType::Fixed(8),
        _ => return None,
    })
}

/// A reader that knows where it is and how much of the file is left, so that every
/// length is compared with what remains before it is used.
struct Walker<R> {
    reader: BufReader<R>,
    pos: u64,
    size: u64,
    /// Version 1 stores lengths and counts as u32, later versions as u64.
    short_lengths: bool,
}

impl<R: Read + Seek> Walker<R> {
    fn new(mut reader: R) -> Result<Self, GgufError> {
        let size = reader.seek(SeekFrom::End(0))?;
        reader.seek(SeekFrom::Start(0))?;
        Ok(Walker {
            reader: BufReader::new(reader),
            pos: 0,
            size,
            short_lengths: false,
        })
    }

    fn left(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn need(&self, needed: u64, what: &str) -> Result<(), GgufError> {
        if needed > self.left() {
            return Err(GgufError::Truncated {
                what: what.into(),
                at: self.pos,
                needed,
                left: self.left(),
            });
        }
        Ok(())
    }

    fn invalid(&self, what: impl Into<String>) -> GgufError {
        GgufError::Invalid {
            at: self.pos,
            what: what.into(),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.reader.read_exact(&mut buf)?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length or count: u32 in version 1, u64 after.
    fn length(&mut self, what: &str) -> Result<u64, GgufError> {
        if self.short_lengths {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn length_size(&self) -> u64 {
        if self.short_lengths { 4 } else { 8 }
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        self.need(n, what)?;
        // `need` bounds n by the file size, which a seek offset always holds.
        let n = i64::try_from(n).map_err(|_| self.invalid(format!("{what} is too long")))?;
        self.reader.seek_relative(n)?;
        self.pos += n as u64;
        Ok(())
    }

    /// A string that is kept (keys, names, the few values read): at most `max` bytes, UTF-8.
    fn string(&mut self, max: u64, what: &str) -> Result<String, GgufError> {
        let len = self.length(what)?;
        if len > max {
            return Err(self.invalid(format!("{what} is {len} bytes long, more than the {max} allowed")));
        }
        self.need(len, what)?;
        let mut buf = vec![0u8; len as usize];
        self.reader.read_exact(&mut buf)?;
        self.pos += len;
        // Trailing NULs are dropped, as candle's reader drops them: "general.alignment\0" must
        // be the key candle will see, or the two readers would disagree about the file.
        while buf.last() == Some(&0) {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| self.invalid(format!("{what} is not UTF-8")))
    }

    fn header(&mut self) -> Result<Header, GgufError> {
        let magic = self.u32("magic")?;
        if magic != MAGIC {
            return Err(GgufError::Magic(magic));
        }
        let version = self.u32("version")?;
        if !(1..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        self.short_lengths = version == 1;
        let tensor_count = self.length("tensor count")?;
        let metadata_count = self.length("metadata count")?;
        // The smallest metadata entry is a key length, a type and one byte; the smallest
        // tensor entry a name length, a dimension count, a type and an offset.
        let min_entry = self.length_size() + 4 + 1;
        let min_tensor = self.length_size() + 4 + 4 + 8;
        let needed = metadata_count
            .saturating_mul(min_entry)
            .saturating_add(tensor_count.saturating_mul(min_tensor));
        self.need(
            needed,
            &format!("{metadata_count} metadata entries and {tensor_count} tensors"),
        )?;

        let mut keys = std::collections::HashSet::new();
        let mut architecture = None;
        let mut alignment = DEFAULT_ALIGNMENT;
        for _ in 0..metadata_count {
            let key = self.string(MAX_NAME, "metadata key")?;
            if !keys.insert(key.clone()) {
                return Err(self.invalid(format!("metadata key `{key}` appears twice")));
            }
            let kind_id = self.u32("metadata value type")?;
            let kind =
                value_type(kind_id).ok_or_else(|| self.invalid(format!("`{key}` has unknown value type {kind_id}")))?;
            match (key.as_str(), kind) {
                ("general.architecture", ValueType::String) => {
                    architecture = Some(self.string(MAX_NAME, "general.architecture")?);
                }
                // Only a u32 (type 4): an i32 or f32 would be read one way here, another by candle.
                ("general.alignment", ValueType::Fixed(4)) if kind_id == 4 => {
                    let value = self.u32("general.alignment")?;
                    if value == 0 || !value.is_power_of_two() {
                        return Err(self.invalid(format!("general.alignment {value} is not a power of two")));
                    }
                    alignment = u64::from(value);
                }
                ("general.alignment", _) => return Err(self.invalid("general.alignment is not a u32")),
                _ => self.value(kind, &key, 0)?,
            }
        }

        let mut tensors: Vec<TensorEntry> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for _ in 0..tensor_count {
            let entry = self.tensor_entry()?;
            if !names.insert(entry.name.clone()) {
                return Err(self.invalid(format!("tensor `{}` appears twice", entry.name)));
            }
            tensors.push(entry);
        }
        let data_offset = self.pos.div_ceil(alignment) * alignment;
        let data_size = self.size.saturating_sub(data_offset);
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(self.invalid(format!(
                    "tensor `{}` starts at {}, not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            let end = t.offset.checked_add(t.bytes);
            if end.is_none_or(|end| end > data_size) {
                return Err(GgufError::Truncated {
                    what: format!("tensor `{}` ({} {:?})", t.name, t.kind.name, t.dims),
                    at: data_offset.saturating_add(t.offset),
                    needed: t.bytes,
                    left: data_size.saturating_sub(t.offset),
                });
            }
        }
        Ok(Header {
            version,
            metadata_count,
            architecture,
            tensors,
            data_offset,
            file_size: self.size,
        })
    }

    /// Skips one metadata value, checking every length in it against the file.
    fn value(&mut self, kind: ValueType, key: &str, depth: usize) -> Result<(), GgufError> {
        match kind {
            ValueType::Fixed(n) => self.skip(n, key),
            ValueType::Bool => {
                let [b] = self.array::<1>(key)?;
                if b > 1 {
                    return Err(self.invalid(format!("`{key}` is a bool of value {b}")));
                }
                Ok(())
            }
            ValueType::String => {
                let len = self.length(key)?;
                self.skip(len, key)
            }
            ValueType::Array => {
                if depth >= MAX_DEPTH {
                    return Err(self.invalid(format!("`{key}` nests arrays more than {MAX_DEPTH} deep")));
                }
                let element = self.u32(key)?;
                let element = value_type(element)
                    .ok_or_else(|| self.invalid(format!("`{key}` has unknown element type {element}")))?;
                let count = self.length(key)?;
                let min = match element {
                    ValueType::Fixed(n) => n,
                    ValueType::Bool => 1,
                    ValueType::String => self.length_size(),
                    ValueType::Array => 4 + self.length_size(),
                };
                self.need(count.saturating_mul(min), &format!("`{key}` ({count} elements)"))?;
                match element {
                    ValueType::Fixed(n) => self.skip(count * n, key),
                    _ => (0..count).try_for_each(|_| self.value(element, key, depth + 1)),
                }
            }
        }
    }

    fn tensor_entry(&mut self) -> Result<TensorEntry, GgufError> {
        let name = self.string(MAX_NAME, "tensor name")?;
        let n_dims = self.u32("tensor dimension count")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(self.invalid(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let dim = self.length("tensor dimension")?;
            elements = elements
                .checked_mul(dim)
                .filter(|&e| e <= MAX_ELEMENTS)
                .ok_or_else(|| self.invalid(format!("tensor `{name}` has more than {MAX_ELEMENTS} elements")))?;
            if dim == 0 {
                return Err(self.invalid(format!("tensor `{name}` has a dimension of size 0")));
            }
            dims.push(dim);
        }
        let type_id = self.u32("tensor type")?;
        let kind = TENSOR_TYPES.iter().find(|t| t.id == type_id).copied().ok_or_else(|| {
            self.invalid(format!(
                "tensor `{name}` has type {type_id}, which deepspark cannot load"
            ))
        })?;
        if dims[0] % kind.block != 0 {
            return Err(self.invalid(format!(
                "tensor `{name}`: its first dimension {} is not a multiple of {}'s block of {}",
                dims[0], kind.name, kind.block
            )));
        }
        let offset = self.u64("tensor offset")?;
        let bytes = elements / kind.block * kind.bytes;
        Ok(TensorEntry {
            name,
            kind,
            dims,
            offset,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
    use candle_core::{Device, Tensor};
    use proptest::prelude::*;

    /// A small valid file written by candle's own writer.
    fn sample() -> Vec<u8> {
        let device = Device::Cpu;
        let w = Tensor::arange(0f32, 64.0, &device)
            .and_then(|t| t.reshape((2, 32)))
            .unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let n = QTensor::quantize(
            &Tensor::ones(8, candle_core::DType::F32, &device).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        let arch = gguf_file::Value::String("llama".into());
        let tokens = gguf_file::Value::Array(vec![gguf_file::Value::String("a".into()); 3]);
        let mut out = std::io::Cursor::new(Vec::new());
        gguf_file::write(
            &mut out,
            &[("general.architecture", &arch), ("tokenizer.ggml.tokens", &tokens)],
            &[("w", &q), ("n", &n)],
        )
        .unwrap();
        out.into_inner()
    }

    #[test]
    fn reads_what_candle_writes() {
        let bytes = sample();
        let header = inspect_bytes(&bytes).unwrap();
        assert_eq!(header.version, 2);
        assert_eq!(header.architecture.as_deref(), Some("llama"));
        let w = header.tensor("w").unwrap();
        assert_eq!((w.kind.name, w.dims.clone(), w.bytes), ("Q8_0", vec![32, 2], 68));
        let content = gguf_file::Content::read(&mut std::io::Cursor::new(&bytes)).unwrap();
        assert_eq!(content.tensor_data_offset, header.data_offset);
    }

    #[test]
    fn block_sizes_agree_with_candle() {
        let candle = [
            (0, GgmlDType::F32),
            (1, GgmlDType::F16),
            (2, GgmlDType::Q4_0),
            (3, GgmlDType::Q4_1),
            (6, GgmlDType::Q5_0),
            (7, GgmlDType::Q5_1),
            (8, GgmlDType::Q8_0),
            (9, GgmlDType::Q8_1),
            (10, GgmlDType::Q2K),
            (11, GgmlDType::Q3K),
            (12, GgmlDType::Q4K),
            (13, GgmlDType::Q5K),
            (14, GgmlDType::Q6K),
            (15, GgmlDType::Q8K),
            (30, GgmlDType::BF16),
        ];
        for (t, (id, dtype)) in TENSOR_TYPES.iter().zip(candle) {
            assert_eq!(t.id, id);
            assert_eq!(
                (t.block, t.bytes),
                (dtype.block_size() as u64, dtype.type_size() as u64),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(
                inspect_bytes(&bytes[..len]).is_err(),
                "accepted {len} of {} bytes",
                bytes.len()
            );
        }
    }

    #[test]
    fn hostile_headers_are_named() {
        let mut bytes = sample();
        bytes[0] = b'X';
        assert!(matches!(inspect_bytes(&bytes), Err(GgufError::Magic(_))));

        let mut bytes = sample();
        bytes[4] = 9;
        assert!(matches!(inspect_bytes(&bytes), Err(GgufError::Version(9))));

        // A tensor count of 2^60 cannot fit in the file.
        let mut bytes = sample();
        bytes[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let err = inspect_bytes(&bytes).unwrap_err().to_string();
        assert!(err.contains("truncated") && err.contains("tensors"), "{err}");

        // The first key's length claims the whole address space.
        let mut bytes = sample();
        bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = inspect_bytes(&bytes).unwrap_err().to_string();
        assert!(err.contains("metadata key"), "{err}");
    }

    // Regression (found by the gguf_header fuzz target): a key "general.alignment\0\0\0" of
    // value 0 passed as some other key, while candle's reader, which drops trailing NULs, took
    // it for the alignment and divided by zero.
    #[test]
    fn keys_are_read_as_candle_reads_them() {
        let crash = "474755460300000000000000000000000100000000000000140000000000000067656e6572616c2e616c69676e6d656e74000000000000000000000000000000000000000000000000000000000100000000000000000000000000000000000000000000000000000000000000000000000000000003000000000000000000000000000000000000000000000000000000000000000874";
        let bytes: Vec<u8> = (0..crash.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&crash[i..i + 2], 16).unwrap())
            .collect();
        let err = inspect_bytes(&bytes).unwrap_err().to_string();
        assert!(err.contains("general.alignment"), "{err}");

        let mut out = std::io::Cursor::new(Vec::new());
        let one = gguf_file::Value::U32(1);
        gguf_file::write(&mut out, &[("k", &one), ("k\0", &one)], &[]).unwrap();
        let err = inspect_bytes(&out.into_inner()).unwrap_err().to_string();
        assert!(err.contains("`k` appears twice"), "{err}");

        // An f32 alignment whose bits are a power of two is still not an alignment.
        let mut out = std::io::Cursor::new(Vec::new());
        let two = gguf_file::Value::F32(2.0);
        gguf_file::write(&mut out, &[("general.alignment", &two)], &[]).unwrap();
        let err = inspect_bytes(&out.into_inner()).unwrap_err().to_string();
        assert!(err.contains("not a u32"), "{err}");
    }

    #[test]
    fn tensor_past_the_end_and_bad_alignment_are_refused() {
        let bytes = sample();
        let header = inspect_bytes(&bytes).unwrap();
        let n_offset_at = find_offset_field(&bytes, "n");
        let mut far = bytes.clone();
        far[n_offset_at..n_offset_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let err = inspect_bytes(&far).unwrap_err().to_string();
        assert!(err.contains("tensor `n`"), "{err}");
        let mut odd = bytes.clone();
        odd[n_offset_at..n_offset_at + 8].copy_from_slice(&(header.tensor("n").unwrap().offset + 1).to_le_bytes());
        let err = inspect_bytes(&odd).unwrap_err().to_string();
        assert!(err.contains("alignment"), "{err}");
    }

    /// Where the offset field of tensor `name` lies: after its name, dimension count,
    /// dimensions and type.
    fn find_offset_field(bytes: &[u8], name: &str) -> usize {
        let mut needle = (name.len() as u64).to_le_bytes().to_vec();
        needle.extend_from_slice(name.as_bytes());
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
            .unwrap();
        let dims_at = at + needle.len();
        let n_dims = u32::from_le_bytes(bytes[dims_at..dims_at + 4].try_into().unwrap()) as usize;
        dims_at + 4 + 8 * n_dims + 4
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Never panics, whatever bytes are flipped; when it accepts, every tensor lies in the file.
        #[test]
        fn corrupted_files_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                       cut in any::<usize>()) {
            let mut bytes = sample();
            for (at, b) in edits {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            let len = bytes.len();
            bytes.truncate(len - cut % 16);
            if let Ok(h) = inspect_bytes(&bytes) {
                for t in &h.tensors {
                    prop_assert!(h.data_offset + t.offset + t.bytes <= bytes.len() as u64);
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut with_magic = b"GGUF\x03\0\0\0".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = inspect_bytes(&with_magic);
            let _ = inspect_bytes(&bytes);
        }
    }
}
