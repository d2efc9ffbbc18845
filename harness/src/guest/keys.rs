//! Keys for curses UIs and line editors, and the bytes a terminal sends
//! for them.

/// Keys for curses UIs and line editors, sent as the escape sequences a
/// VT100/xterm sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Key {
    Up,
    Down,
    Left,
    Right,
    Enter,
    Tab,
    Esc,
    Backspace,
    Delete,
    Home,
    End,
    PageUp,
    PageDown,
    Space,
    CtrlC,
    CtrlD,
    F(u8),
}

impl Key {
    /// The bytes the key sends.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Key::Up => b"\x1b[A",
            Key::Down => b"\x1b[B",
            Key::Right => b"\x1b[C",
            Key::Left => b"\x1b[D",
            Key::Enter => b"\r",
            Key::Tab => b"\t",
            Key::Esc => b"\x1b",
            Key::Backspace => b"\x7f",
            Key::Delete => b"\x1b[3~",
            Key::Home => b"\x1b[H",
            Key::End => b"\x1b[F",
            Key::PageUp => b"\x1b[5~",
            Key::PageDown => b"\x1b[6~",
            Key::Space => b" ",
            Key::CtrlC => b"\x03",
            Key::CtrlD => b"\x04",
            Key::F(n) => match n {
                1 => b"\x1bOP",
                2 => b"\x1bOQ",
                3 => b"\x1bOR",
                4 => b"\x1bOS",
                5 => b"\x1b[15~",
                6 => b"\x1b[17~",
                7 => b"\x1b[18~",
                8 => b"\x1b[19~",
                9 => b"\x1b[20~",
                10 => b"\x1b[21~",
                11 => b"\x1b[23~",
                _ => b"\x1b[24~",
            },
        }
    }

    /// Parses a key name: `Up`, `down`, `Enter`, `F1`..`F12`, `Ctrl-C`, ...
    pub fn parse(name: &str) -> Option<Key> {
        let n = name
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', '+'], "");
        Some(match n.as_str() {
            "up" => Key::Up,
            "down" => Key::Down,
            "left" => Key::Left,
            "right" => Key::Right,
            "enter" | "return" => Key::Enter,
            "tab" => Key::Tab,
            "esc" | "escape" => Key::Esc,
            "backspace" => Key::Backspace,
            "delete" | "del" => Key::Delete,
            "home" => Key::Home,
            "end" => Key::End,
            "pageup" | "pgup" => Key::PageUp,
            "pagedown" | "pgdn" => Key::PageDown,
            "space" => Key::Space,
            "ctrlc" => Key::CtrlC,
            "ctrld" => Key::CtrlD,
            f if f.starts_with('f') => {
                let k: u8 = f[1..].parse().ok()?;
                if (1..=12).contains(&k) {
                    Key::F(k)
                } else {
                    return None;
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_encode() {
        assert_eq!(Key::parse("Down"), Some(Key::Down));
        assert_eq!(Key::parse("ctrl-c"), Some(Key::CtrlC));
        assert_eq!(Key::parse("F10").unwrap().bytes(), b"\x1b[21~");
        assert_eq!(Key::parse("F13"), None);
        assert_eq!(Key::parse("Hyper"), None);
    }
}
