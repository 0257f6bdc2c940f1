//! Colours on a terminal, and only there: never in a pipe or a file, never with `NO_COLOR` set
//! (<https://no-color.org>) or `TERM=dumb`. Plain ANSI codes: a colour crate would add size for
//! the two or three colours the CLI uses.

use std::io::IsTerminal;

/// A colour the CLI uses, each with one meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Healthy: online, confirmed.
    Green,
    /// Attention: warnings, on trial.
    Yellow,
    /// Trouble: errors, offline, refused, rolled back.
    Red,
    /// Less important text.
    Dim,
}

/// Whether stdout (`stderr == false`) or stderr takes colours.
pub fn enabled(stderr: bool) -> bool {
    let terminal = if stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    terminal && allowed(std::env::var_os("NO_COLOR"), std::env::var_os("TERM"))
}

/// The environment's part of [`enabled`]: `NO_COLOR` set to anything non-empty, or
/// `TERM=dumb`, turns colours off.
fn allowed(no_color: Option<std::ffi::OsString>, term: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|value| value.is_empty()) && term.is_none_or(|term| term != "dumb")
}

/// `text` in `colour` if `on`, else unchanged.
pub fn paint(text: &str, colour: Colour, on: bool) -> String {
    if !on {
        return text.to_owned();
    }
    let code = match colour {
        Colour::Green => "32",
        Colour::Yellow => "33",
        Colour::Red => "31",
        Colour::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_and_dumb_terminals_turn_colours_off() {
        assert!(allowed(None, Some("xterm-256color".into())));
        assert!(allowed(Some("".into()), None), "an empty NO_COLOR is unset");
        assert!(!allowed(Some("1".into()), Some("xterm".into())));
        assert!(!allowed(None, Some("dumb".into())));
        assert_eq!(paint("yes", Colour::Green, false), "yes");
        assert_eq!(paint("no", Colour::Red, true), "\x1b[31mno\x1b[0m");
    }
}
