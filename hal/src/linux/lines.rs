//! How GPIO lines are named on Linux, shared by [`LinuxGpio`](super::LinuxGpio) and
//! [`SimGpio`](crate::SimGpio): `<chip>:<offset>` always, and the kernel's line name (from the
//! device tree, such as `GPIO17`) when no other line has it.

use std::collections::{HashMap, HashSet};

use crate::GpioError;

/// One line's identity.
#[derive(Debug, Clone)]
pub(crate) struct LineId {
    pub(crate) chip: String,
    pub(crate) offset: u32,
    pub(crate) line_name: Option<String>,
}

impl LineId {
    /// `<chip>:<offset>`.
    pub(crate) fn id(&self) -> String {
        format!("{}:{}", self.chip, self.offset)
    }
}

/// Resolves line names (`<chip>:<offset>` or kernel names) to positions in a list of lines.
#[derive(Debug, Default)]
pub(crate) struct LineIndex {
    pub(crate) lines: Vec<LineId>,
    chips: HashSet<String>,
    ids: HashMap<String, usize>,
    names: HashMap<String, usize>,
    ambiguous: HashMap<String, Vec<usize>>,
}

impl LineIndex {
    /// Adds a chip whose lines, in offset order, have these kernel names. Returns `false`,
    /// adding nothing, if the chip is already there.
    pub(crate) fn add_chip(
        &mut self,
        chip: &str,
        names: impl IntoIterator<Item = Option<String>>,
    ) -> bool {
        if !self.chips.insert(chip.to_owned()) {
            return false;
        }
        for (offset, line_name) in (0u32..).zip(names) {
            let index = self.lines.len();
            let line = LineId {
                chip: chip.to_owned(),
                offset,
                line_name,
            };
            self.ids.insert(line.id(), index);
            if let Some(name) = line.line_name.clone().filter(|name| !name.is_empty()) {
                if let Some(sharers) = self.ambiguous.get_mut(&name) {
                    sharers.push(index);
                } else if let Some(first) = self.names.remove(&name) {
                    self.ambiguous.insert(name, vec![first, index]);
                } else {
                    self.names.insert(name, index);
                }
            }
            self.lines.push(line);
        }
        true
    }

    /// The position of `line`, or why there is none.
    pub(crate) fn resolve(&self, line: &str) -> Result<usize, GpioError> {
        if let Some(&index) = self.ids.get(line).or_else(|| self.names.get(line)) {
            return Ok(index);
        }
        if let Some(sharers) = self.ambiguous.get(line) {
            let lines = sharers
                .iter()
                .filter_map(|&i| self.lines.get(i))
                .map(LineId::id)
                .collect();
            return Err(GpioError::Ambiguous {
                name: line.to_owned(),
                lines,
            });
        }
        if let Some((chip, offset)) = line.rsplit_once(':')
            && offset.parse::<u32>().is_ok()
            && !self.chips.contains(chip)
        {
            return Err(GpioError::NoChip {
                line: line.to_owned(),
                chip: chip.to_owned(),
            });
        }
        Err(GpioError::NotFound(line.to_owned()))
    }
}
