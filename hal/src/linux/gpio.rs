//! [`LinuxGpio`]: GPIO lines over the kernel's GPIO character device (uAPI v2), through
//! `gpiocdev`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gpiocdev::line::{Direction, Value};
use gpiocdev::{Chip, Request};

use super::lines::LineIndex;
use crate::gpio::{CONSUMER, lock};
use crate::{GpioBoard, GpioDirection, GpioError, GpioLineInfo};

/// The GPIO chips of a Linux board (`/dev/gpiochip*`).
///
/// Semantics of the calls, which follow from how the kernel hands out lines:
/// - [`GpioBoard::write`] requests the line as an output (consumer `outpost`) and **keeps** the
///   request, so the level stays driven; later writes reuse it. The line stays held until
///   [`LinuxGpio::release`] or until the board is dropped; then the kernel may let it float.
/// - [`GpioBoard::read`] of a line this board holds returns the level it drives. Any other line
///   is requested as an input for the duration of the read and released again: this makes it
///   an input (as reading a button or sensor wants), and fails with "busy" while another
///   process or a kernel driver holds the line.
/// - [`GpioBoard::lines`] reports the kernel's line info; `value` is known only for held lines,
///   since reading any other line would have to request (and so reconfigure) it.
#[derive(Debug)]
pub struct LinuxGpio {
    chips: Vec<(String, Chip)>,
    index: LineIndex,
    /// Output requests this board holds, by position in `index`.
    held: Mutex<HashMap<usize, Request>>,
}

impl LinuxGpio {
    /// Opens every `gpiochip<N>` in `dev_dir` (`/dev` on a device) and reads its line names.
    /// A directory without chips gives a board without lines; a chip that cannot be opened
    /// (permission, not a GPIO device) is an error naming it.
    pub fn discover(dev_dir: &Path) -> Result<LinuxGpio, GpioError> {
        let failed = |path: &Path, reason: String| GpioError::Discover {
            path: path.display().to_string(),
            reason,
        };
        let entries = fs::read_dir(dev_dir).map_err(|err| failed(dev_dir, err.to_string()))?;
        let mut paths: Vec<(u64, PathBuf)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let number = name.strip_prefix("gpiochip")?;
                if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((number.parse().ok()?, entry.path()))
            })
            .collect();
        paths.sort();
        let mut chips = Vec::with_capacity(paths.len());
        let mut index = LineIndex::default();
        for (number, path) in paths {
            let chip = Chip::from_path(&path).map_err(|err| failed(&path, err.to_string()))?;
            let info = chip.info().map_err(|err| failed(&path, err.to_string()))?;
            let name = format!("gpiochip{number}");
            let names = (0..info.num_lines).map(|offset| {
                let info = chip.line_info(offset).ok()?;
                Some(info.name).filter(|name| !name.is_empty())
            });
            index.add_chip(&name, names);
            chips.push((name, chip));
        }
        Ok(LinuxGpio {
            chips,
            index,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Stops driving `line` and hands it back to the kernel. Returns whether it was held.
    pub fn release(&self, line: &str) -> Result<bool, GpioError> {
        let index = self.index.resolve(line)?;
        Ok(lock(&self.held).remove(&index).is_some())
    }

    /// The line's `<chip>:<offset>`, its chip and its offset.
    fn locate(&self, line: &str) -> Result<(usize, String, &Chip, u32), GpioError> {
        let index = self.index.resolve(line)?;
        let not_found = || GpioError::NotFound(line.to_owned());
        let id = self.index.lines.get(index).ok_or_else(not_found)?;
        let (_, chip) = self
            .chips
            .iter()
            .find(|(name, _)| *name == id.chip)
            .ok_or_else(not_found)?;
        Ok((index, id.id(), chip, id.offset))
    }
}

/// The error for a failed uAPI call on a line.
fn line_error(line: &str, operation: &'static str) -> impl FnOnce(gpiocdev::Error) -> GpioError {
    move |err| GpioError::Line {
        line: line.to_owned(),
        operation,
        reason: err.to_string(),
    }
}

impl GpioBoard for LinuxGpio {
    fn lines(&self) -> Vec<GpioLineInfo> {
        let held = lock(&self.held);
        let mut lines = Vec::with_capacity(self.index.lines.len());
        for (index, id) in self.index.lines.iter().enumerate() {
            let chip = self.chips.iter().find(|(name, _)| *name == id.chip);
            let info = chip.and_then(|(_, chip)| chip.line_info(id.offset).ok());
            let value = held
                .get(&index)
                .and_then(|request| request.value(id.offset).ok())
                .map(bool::from);
            lines.push(GpioLineInfo {
                name: id.id(),
                line_name: id.line_name.clone(),
                chip: id.chip.clone(),
                offset: id.offset,
                direction: match info.as_ref().map(|info| info.direction) {
                    Some(Direction::Input) => GpioDirection::Input,
                    Some(Direction::Output) => GpioDirection::Output,
                    None => GpioDirection::Unknown,
                },
                value,
                consumer: info
                    .map(|info| info.consumer)
                    .filter(|consumer| !consumer.is_empty()),
            });
        }
        lines
    }

    fn read(&self, line: &str) -> Result<bool, GpioError> {
        let (index, id, chip, offset) = self.locate(line)?;
        // Held across the request so a concurrent write cannot slip in between.
        let held = lock(&self.held);
        if let Some(request) = held.get(&index) {
            return request
                .value(offset)
                .map(bool::from)
                .map_err(line_error(&id, "read"));
        }
        let request = Request::builder()
            .on_chip(chip.path())
            .with_consumer(CONSUMER)
            .with_line(offset)
            .as_input()
            .request()
            .map_err(line_error(&id, "request as input"))?;
        request
            .value(offset)
            .map(bool::from)
            .map_err(line_error(&id, "read"))
    }

    fn write(&self, line: &str, value: bool) -> Result<(), GpioError> {
        let (index, id, chip, offset) = self.locate(line)?;
        let mut held = lock(&self.held);
        if let Some(request) = held.get(&index) {
            return request
                .set_value(offset, Value::from(value))
                .map_err(line_error(&id, "write"));
        }
        let request = Request::builder()
            .on_chip(chip.path())
            .with_consumer(CONSUMER)
            .with_line(offset)
            .as_output(Value::from(value))
            .request()
            .map_err(line_error(&id, "request as output"))?;
        held.insert(index, request);
        Ok(())
    }
}
