//! Device choice, in one function: explicit flag, else CUDA, else Metal, else CPU.
//!
//! GPU backends exist only when deepspark is built with the `cuda` or `metal` cargo
//! feature; asking for one in a build without it is a clear error, never a silent CPU run.

use candle_core::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

pub fn device(choice: DeviceChoice) -> anyhow::Result<Device> {
    use anyhow::{Context, bail};
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                bail!("this deepspark was built without CUDA; rebuild with `cargo install --path . --features cuda`");
            }
            Device::new_cuda(0).context("could not open CUDA device 0")
        }
        DeviceChoice::Metal => {
            if !candle_core::utils::metal_is_available() {
                bail!("this deepspark was built without Metal; rebuild with `cargo install --path . --features metal`");
            }
            Device::new_metal(0).context("could not open Metal device 0")
        }
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available()
                && let Ok(d) = Device::new_cuda(0)
            {
                return Ok(d);
            }
            if candle_core::utils::metal_is_available()
                && let Ok(d) = Device::new_metal(0)
            {
                return Ok(d);
            }
            Ok(Device::Cpu)
        }
    }
}
