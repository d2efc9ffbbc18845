//! Streaming removal of ANSI / terminal control sequences from console output.
//!
//! A serial console is a byte stream written for a terminal: colours, cursor
//! moves, window titles, bracketed-paste toggles and `\r\n` line ends are mixed
//! into the text. [`AnsiStripper`] turns it into plain text that a regular
//! expression can match, one chunk at a time, and reports the terminal
//! *queries* it saw (e.g. the cursor-position request `ESC [ 6 n`) so the
//! caller can answer them; a guest that asks and never gets an answer may hang.
//!
//! # State machine
//!
//! The machine follows ECMA-48 / the DEC VT500 parser, reduced to what is needed
//! to *drop* sequences (nothing is rendered):
//!
//! | state            | entered by                         | left by                                                     |
//! |------------------|------------------------------------|-------------------------------------------------------------|
//! | ground           | start, end of any sequence         | `ESC` → escape                                              |
//! | escape           | `ESC`                              | `[` → CSI, `]` → OSC, `P` → DCS, `X` → SOS, `^` → PM, `_` → APC, `0x20..=0x2f` → escape-intermediate, any other `0x30..=0x7e` ends a two-byte sequence (`ESC 7`, `ESC =`, `ESC M`, `ESC c`, ...) |
//! | escape-intermediate | `ESC` + `0x20..=0x2f`           | a final byte `0x30..=0x7e` (charset designations `ESC ( 0`, `ESC ) B`, `ESC % G`, `ESC # 8`, ...) |
//! | CSI              | `ESC [`                            | a final byte `0x40..=0x7e`; parameters `0x30..=0x3f` (incl. private `?`, `>`, `<`, `=`) and intermediates `0x20..=0x2f` are skipped |
//! | string           | `ESC ]`, `ESC P`, `ESC X`, `ESC ^`, `ESC _` | ST (`ESC \`); for OSC also BEL                      |
//!
//! Rules that apply in every state:
//!
//! * `CAN` (0x18) and `SUB` (0x1a) cancel a sequence; `DEL` (0x7f) is ignored.
//! * `ESC` inside a sequence starts a new one (inside a string it may be the
//!   first byte of ST).
//! * Any other C0 control byte (`\r`, `\n`, ...) or any byte `>= 0x80` inside
//!   escape, escape-intermediate or CSI state **aborts** the sequence and is then
//!   processed as ordinary input. Real terminals execute C0 controls inside a
//!   CSI without aborting it, but console logs often contain sequences that were
//!   cut off (systemd truncates status lines to the terminal width, counting the
//!   escape bytes, and puts a `…` where it cut, e.g. `ESC [ … - POSIX`); aborting
//!   keeps the text that follows visible instead of swallowing it up to the next
//!   letter.
//! * Sequence length is bounded: a CSI longer than [`MAX_CSI_LEN`] bytes or a
//!   string (OSC/DCS/SOS/PM/APC) longer than [`MAX_STRING_LEN`] bytes is
//!   abandoned: the machine returns to ground and the following bytes are text.
//!   The stripper's memory use is constant.
//!
//! 8-bit C1 controls (`0x80..=0x9f`, e.g. the one-byte CSI `0x9b`) are **not**
//! interpreted: in UTF-8 text those bytes are continuation bytes (`…` is
//! `e2 80 a6`, `›` is `e2 80 ba`, and `0x9b` appears in many characters), and
//! Linux consoles and terminal programs use the 7-bit forms. All bytes
//! `>= 0x80` are passed through unchanged, so UTF-8 (valid or not) survives.
//!
//! # Text rules (ground state)
//!
//! * Printable ASCII, `\t` and every byte `>= 0x80` are copied to the output.
//! * A line feed is emitted for `\n`, and for a `\r` that is not at the start
//!   of a line (a lone `\r` — progress bars, `\r` used as a line end — becomes a
//!   line break **immediately**, so nothing waits for the next read).
//! * After a `\r` that produced a line break, one directly following `\n` is
//!   swallowed, so `\r\n` is one line break. Further `\r`s at the start of a
//!   line are no-ops (the cursor is already in column 0), so the `\r\r\n` and
//!   `\r\r\r\n` that serial consoles produce (output post-processing applied
//!   twice) are one line break, and `\r\n\r\n` is still two. Escape sequences and
//!   dropped controls between the `\r` and the `\n` do not change this, so
//!   `\r ESC[K \n` is one line break as well.
//! * All other C0 controls (NUL, BEL, BS, VT, FF, SO, SI, ...) and DEL are dropped.
//!
//! Because the whole state lives in the struct, feeding a stream in pieces split
//! at any byte boundary gives exactly the same output as feeding it at once.

use std::fmt;

/// CSI sequences longer than this many bytes (after `ESC [`) are abandoned.
pub const MAX_CSI_LEN: usize = 256;

/// OSC/DCS/SOS/PM/APC strings longer than this many bytes are abandoned.
pub const MAX_STRING_LEN: usize = 4096;

/// Parameter/intermediate bytes of a CSI remembered for recognising queries.
const CSI_PARAM_CAP: usize = 8;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
const DEL: u8 = 0x7f;

/// `PLAIN[b]` is true for bytes that ground state copies to the output as-is.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0x20;
    while i < 256 {
        t[i] = i != DEL as usize;
        i += 1;
    }
    t
};

/// A terminal query found in the stream, which a terminal would answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Query {
    /// `ESC [ 6 n` (DSR 6): "where is the cursor?"; answered with `ESC [ row ; col R`.
    /// Programs such as `resize`, some login shells and installers send it
    /// and wait for the answer.
    CursorPosition,
    /// `ESC [ 5 n` (DSR 5): "are you OK?"; answered with `ESC [ 0 n`.
    DeviceStatus,
    /// `ESC [ c` / `ESC [ 0 c` (primary DA): "what terminal are you?".
    DeviceAttributes,
}

impl Query {
    /// A reply a VT100-compatible 80x24 terminal would give, ready to write
    /// back to the guest.
    pub fn standard_reply(self) -> &'static [u8] {
        match self {
            Query::CursorPosition => b"\x1b[24;80R",
            Query::DeviceStatus => b"\x1b[0n",
            // VT102.
            Query::DeviceAttributes => b"\x1b[?6c",
        }
    }
}

/// Terminal queries seen during one [`AnsiStripper::feed`] call, in stream order.
///
/// Empty (and allocation-free) in the common case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queries {
    found: Vec<Query>,
}

impl Queries {
    /// True when no query was seen.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Number of queries seen.
    pub fn len(&self) -> usize {
        self.found.len()
    }

    /// The queries in the order they appeared.
    pub fn iter(&self) -> impl Iterator<Item = Query> + '_ {
        self.found.iter().copied()
    }

    /// Number of cursor-position queries (`ESC [ 6 n`) seen.
    pub fn cursor_position(&self) -> usize {
        self.found
            .iter()
            .filter(|q| **q == Query::CursorPosition)
            .count()
    }
}

/// Which kind of control string is being skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringKind {
    /// Operating System Command (`ESC ]`), e.g. window titles; BEL or ST ends it.
    Osc,
    /// Device Control String (`ESC P`), Start Of String (`ESC X`), Privacy
    /// Message (`ESC ^`), Application Program Command (`ESC _`); ST ends them.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    Escape,
    EscapeIntermediate,
    Csi,
    String(StringKind),
    /// `ESC` seen inside a string: `\` completes ST, anything else aborts the
    /// string and is handled as the byte after an `ESC`.
    StringEscape(StringKind),
}

/// Streaming ANSI / terminal-control stripper; see the [module docs](self)
/// for the exact rules.
///
/// ```
/// use bootrig_diagnostics::ansi::AnsiStripper;
/// let mut s = AnsiStripper::new();
/// let mut out = Vec::new();
/// s.feed(b"\x1b[0;32m  OK  \x1b[0m] Started\r\n\x1b[?2004hroot@vm:~# ", &mut out);
/// assert_eq!(out, b"  OK  ] Started\nroot@vm:~# ");
/// ```
#[derive(Clone)]
pub struct AnsiStripper {
    state: State,
    /// Bytes consumed by the current CSI or string (for the length bounds).
    seq_len: usize,
    /// Parameter and intermediate bytes of the current CSI (first few only).
    params: [u8; CSI_PARAM_CAP],
    params_len: usize,
    /// Nothing visible has been emitted since the last line break (or start).
    at_line_start: bool,
    /// The last line break came from a `\r`; a following `\n` is swallowed.
    cr_pending: bool,
}

impl fmt::Debug for AnsiStripper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnsiStripper")
            .field("state", &self.state)
            .field("seq_len", &self.seq_len)
            .field("at_line_start", &self.at_line_start)
            .field("cr_pending", &self.cr_pending)
            .finish()
    }
}

impl Default for AnsiStripper {
    fn default() -> Self {
        Self::new()
    }
}

impl AnsiStripper {
    /// A stripper in ground state, at the start of a line.
    pub fn new() -> Self {
        AnsiStripper {
            state: State::Ground,
            seq_len: 0,
            params: [0; CSI_PARAM_CAP],
            params_len: 0,
            at_line_start: true,
            cr_pending: false,
        }
    }

    /// True while the stripper is inside an escape sequence or control string
    /// (i.e. the last fed byte did not complete it).
    pub fn in_sequence(&self) -> bool {
        self.state != State::Ground
    }

    /// Strips `input`, appending the visible text to `out`, and returns the
    /// terminal queries completed in this chunk.
    ///
    /// `input` may end (and the next call start) anywhere, including in the
    /// middle of an escape sequence or a UTF-8 character. Never panics.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Queries {
        let mut queries = Queries::default();
        out.reserve(input.len());
        let mut i = 0;
        let n = input.len();
        while i < n {
            match self.state {
                State::Ground => {
                    // Fast path: copy the run of plain bytes in one go.
                    let run = plain_run(&input[i..]);
                    if run > 0 {
                        out.extend_from_slice(&input[i..i + run]);
                        self.at_line_start = false;
                        self.cr_pending = false;
                        i += run;
                        if i == n {
                            break;
                        }
                    }
                    let b = input[i];
                    i += 1;
                    self.ground_control(b, out);
                }
                State::Csi => {
                    // Fast path: skip parameter and intermediate bytes.
                    while i < n && (0x20..=0x3f).contains(&input[i]) {
                        if self.params_len < CSI_PARAM_CAP {
                            self.params[self.params_len] = input[i];
                        }
                        // Counts past the cap so that long parameter lists
                        // never look like a query.
                        self.params_len = self.params_len.saturating_add(1);
                        self.seq_len += 1;
                        i += 1;
                        if self.seq_len > MAX_CSI_LEN {
                            self.state = State::Ground;
                            break;
                        }
                    }
                    if i < n && self.state == State::Csi {
                        let b = input[i];
                        i += 1;
                        if let Some(q) = self.step(b, out) {
                            queries.found.push(q);
                        }
                    }
                }
                _ => {
                    let b = input[i];
                    i += 1;
                    if let Some(q) = self.step(b, out) {
                        queries.found.push(q);
                    }
                }
            }
        }
        queries
    }

    /// Handles a non-plain byte in ground state.
    #[inline(always)]
    fn ground_control(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            ESC => self.state = State::Escape,
            b'\n' => {
                if self.cr_pending {
                    self.cr_pending = false;
                } else {
                    out.push(b'\n');
                    self.at_line_start = true;
                }
            }
            // At the start of a line a carriage return is a no-op.
            b'\r' if !self.at_line_start => {
                out.push(b'\n');
                self.at_line_start = true;
                self.cr_pending = true;
            }
            b'\t' => {
                out.push(b'\t');
                self.at_line_start = false;
                self.cr_pending = false;
            }
            // Other C0 controls and DEL are dropped.
            _ => {}
        }
    }

    /// One byte in a non-ground state. Returns a query if a CSI completed one.
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> Option<Query> {
        match self.state {
            State::Ground => {
                if PLAIN[b as usize] {
                    out.push(b);
                    self.at_line_start = false;
                    self.cr_pending = false;
                } else {
                    self.ground_control(b, out);
                }
                None
            }
            State::Escape => {
                match b {
                    b'[' => {
                        self.state = State::Csi;
                        self.seq_len = 0;
                        self.params_len = 0;
                    }
                    b']' => self.enter_string(StringKind::Osc),
                    b'P' | b'X' | b'^' | b'_' => self.enter_string(StringKind::Other),
                    0x20..=0x2f => self.state = State::EscapeIntermediate,
                    0x30..=0x7e => self.state = State::Ground,
                    _ => self.interrupt(b, out),
                }
                None
            }
            State::EscapeIntermediate => {
                match b {
                    0x20..=0x2f => {}
                    0x30..=0x7e => self.state = State::Ground,
                    _ => self.interrupt(b, out),
                }
                None
            }
            State::Csi => match b {
                0x20..=0x3f => {
                    self.seq_len += 1;
                    if self.params_len < CSI_PARAM_CAP {
                        self.params[self.params_len] = b;
                    }
                    // Counts past the cap so that long parameter lists never
                    // look like a query.
                    self.params_len = self.params_len.saturating_add(1);
                    if self.seq_len > MAX_CSI_LEN {
                        self.state = State::Ground;
                    }
                    None
                }
                0x40..=0x7e => {
                    self.state = State::Ground;
                    self.csi_query(b)
                }
                _ => {
                    self.interrupt(b, out);
                    None
                }
            },
            State::String(kind) => {
                match b {
                    ESC => self.state = State::StringEscape(kind),
                    BEL if kind == StringKind::Osc => self.state = State::Ground,
                    CAN | SUB => self.state = State::Ground,
                    _ => {
                        self.seq_len += 1;
                        if self.seq_len > MAX_STRING_LEN {
                            self.state = State::Ground;
                        }
                    }
                }
                None
            }
            State::StringEscape(_) => {
                if b == b'\\' {
                    self.state = State::Ground;
                    None
                } else {
                    // The ESC ended the string and starts a new sequence.
                    self.state = State::Escape;
                    self.step(b, out)
                }
            }
        }
    }

    fn enter_string(&mut self, kind: StringKind) {
        self.state = State::String(kind);
        self.seq_len = 0;
    }

    /// A byte that does not belong to the escape/CSI sequence in progress.
    fn interrupt(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            ESC => self.state = State::Escape,
            DEL => {}
            CAN | SUB => self.state = State::Ground,
            _ => {
                // Abort the sequence; the byte is ordinary input.
                self.state = State::Ground;
                self.step(b, out);
            }
        }
    }

    /// Recognises the queries among completed CSI sequences.
    fn csi_query(&self, final_byte: u8) -> Option<Query> {
        let params = &self.params[..self.params_len.min(CSI_PARAM_CAP)];
        if self.params_len > CSI_PARAM_CAP {
            return None;
        }
        match (final_byte, params) {
            (b'n', b"6") => Some(Query::CursorPosition),
            (b'n', b"5") => Some(Query::DeviceStatus),
            (b'c', b"") | (b'c', b"0") => Some(Query::DeviceAttributes),
            _ => None,
        }
    }
}

/// Length of the run of [`PLAIN`] bytes at the start of `s`.
///
/// Checks eight bytes at a time: a word is all plain when no byte is below
/// 0x20 and none equals 0x7f (the classic "has less than" / "has zero byte"
/// tests, exact as yes/no answers); the word with a special byte is finished
/// bytewise.
#[inline]
fn plain_run(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(word) = s.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let below_space = x.wrapping_sub(0x20 * ONES) & !x & HIGH;
        let y = x ^ (0x7f * ONES);
        let is_del = y.wrapping_sub(ONES) & !y & HIGH;
        if below_space | is_del != 0 {
            break;
        }
        i += 8;
    }
    while i < s.len() && PLAIN[s[i] as usize] {
        i += 1;
    }
    i
}

/// Strips a complete buffer in one go (convenience for tests and offline tools).
pub fn strip(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    AnsiStripper::new().feed(input, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn s(input: &[u8]) -> Vec<u8> {
        strip(input)
    }

    fn feed_chunks(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Query>) {
        let mut st = AnsiStripper::new();
        let mut out = Vec::new();
        let mut qs = Vec::new();
        let mut prev = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            qs.extend(st.feed(&input[prev..c], &mut out).iter());
            prev = c;
        }
        (out, qs)
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(s(b"hello world"), b"hello world");
        assert_eq!(s(b""), b"");
        assert_eq!(s(b"a\tb"), b"a\tb");
    }

    #[test]
    fn sgr_colours_are_removed() {
        assert_eq!(
            s(b"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mfoo.service\x1b[0m."),
            b"[  OK  ] Started foo.service."
        );
        assert_eq!(s(b"\x1b[m\x1b[1m\x1b[38;5;196mred\x1b[39m"), b"red");
        assert_eq!(s(b"\x1b[38:2::255:0:0mx"), b"x");
    }

    #[test]
    fn csi_private_and_intermediates() {
        assert_eq!(s(b"\x1b[?2004hroot# \x1b[?2004l"), b"root# ");
        assert_eq!(s(b"\x1b[?7l\x1b[?25h\x1b[?1049h"), b"");
        assert_eq!(s(b"a\x1b[2 qb"), b"ab"); // DECSCUSR, intermediate space
        assert_eq!(s(b"a\x1b[>4;1mb\x1b[=c"), b"ab");
        assert_eq!(s(b"\x1b[2J\x1b[H\x1b[10;20Hx\x1b[K\x1b[1A\x1b[3C"), b"x");
        assert_eq!(s(b"a\x1b[!pb"), b"ab"); // DECSTR
    }

    #[test]
    fn osc_titles_with_bel_and_st() {
        assert_eq!(s(b"\x1b]0;root@vm: ~\x07$ "), b"$ ");
        assert_eq!(s(b"\x1b]2;title\x1b\\$ "), b"$ ");
        assert_eq!(
            s(b"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\ end"),
            b"link end"
        );
        // UTF-8 and newlines inside a title are part of the title.
        assert_eq!(s("\x1b]0;tëst\n\x07x".as_bytes()), b"x");
        // ESC followed by something else ends the OSC and starts a new sequence.
        assert_eq!(s(b"\x1b]0;t\x1b[31mred"), b"red");
    }

    #[test]
    fn dcs_sos_pm_apc_strings() {
        assert_eq!(s(b"a\x1bP1$r0m\x1b\\b"), b"ab");
        assert_eq!(s(b"a\x1bXsos\x1b\\b"), b"ab");
        assert_eq!(s(b"a\x1b^pm\x1b\\b"), b"ab");
        assert_eq!(s(b"a\x1b_apc\x07still\x1b\\b"), b"ab"); // BEL ends only OSC
        assert_eq!(s(b"a\x1bPq#0;2;0;0;0#0~~@@vv\x1b\\b"), b"ab"); // sixel
    }

    #[test]
    fn charset_designations_and_two_byte_sequences() {
        assert_eq!(s(b"\x1b(0lqk\x1b(B"), b"lqk");
        assert_eq!(s(b"\x1b)Bx\x1b*0y\x1b+Bz\x1b-A"), b"xyz");
        assert_eq!(s(b"\x1b%Gutf\x1b#8"), b"utf");
        assert_eq!(s(b"\x1b=\x1b>\x1b7a\x1b8\x1bMb\x1bD\x1bE\x1bH\x1bc"), b"ab");
        assert_eq!(s(b"\x1b\\x"), b"x"); // stray ST
        assert_eq!(s(b"\x1b$(Cx"), b"x"); // multi-byte charset
    }

    #[test]
    fn line_endings() {
        assert_eq!(s(b"a\r\nb\r\n"), b"a\nb\n");
        assert_eq!(s(b"a\nb\n"), b"a\nb\n");
        assert_eq!(s(b"a\r\r\nb\r\r\r\n"), b"a\nb\n");
        assert_eq!(s(b"a\r\n\r\nb"), b"a\n\nb");
        assert_eq!(s(b"a\r\r\n\r\r\nb"), b"a\n\nb");
        assert_eq!(s(b"10%\r20%\r30%\n"), b"10%\n20%\n30%\n");
        assert_eq!(s(b"a\n\n\nb"), b"a\n\n\nb");
        assert_eq!(s(b"a\n\r\nb"), b"a\n\nb");
        // Escape sequences between \r and \n do not create an extra line.
        assert_eq!(s(b"a\r\x1b[K\nb"), b"a\nb");
        assert_eq!(s(b"cmd\r\r\n\x1b[?2004l\rout"), b"cmd\nout");
        // A lone \r is emitted at once, not held back.
        let mut st = AnsiStripper::new();
        let mut out = Vec::new();
        st.feed(b"prompt\r", &mut out);
        assert_eq!(out, b"prompt\n");
        st.feed(b"\nnext", &mut out);
        assert_eq!(out, b"prompt\nnext");
        // \r at the very start is a no-op.
        assert_eq!(s(b"\r\rx"), b"x");
    }

    #[test]
    fn c0_controls_dropped() {
        assert_eq!(
            s(b"a\x00b\x07c\x08d\x0be\x0cf\x0eg\x0fh\x7fi"),
            b"abcdefghi"
        );
        assert_eq!(s(b"\x00\x00\x00"), b"");
    }

    #[test]
    fn utf8_and_invalid_bytes_pass_through() {
        let text = "Grüße … ✓ 日本 \u{1F600}";
        assert_eq!(s(text.as_bytes()), text.as_bytes());
        // 0x9b (C1 CSI) is a UTF-8 continuation byte: '›' = e2 80 ba, 'ě' = c4 9b.
        assert_eq!(s("ě›".as_bytes()), "ě›".as_bytes());
        assert_eq!(s(b"\x9b31mx"), b"\x9b31mx");
        assert_eq!(s(b"\xff\xfe\xc0\x80 ok"), b"\xff\xfe\xc0\x80 ok");
    }

    #[test]
    fn truncated_sequences_keep_following_text() {
        // systemd cut a line inside an escape sequence and put '…' there.
        assert_eq!(
            s("mount\x1b…POSIX Queue".as_bytes()),
            "mount…POSIX Queue".as_bytes()
        );
        assert_eq!(
            s("mount\x1b[…- POSIX Queue".as_bytes()),
            "mount…- POSIX Queue".as_bytes()
        );
        // A CSI cut off by a line end does not eat the next line.
        assert_eq!(s(b"x\x1b[0;1\r\nnext line"), b"x\nnext line");
        assert_eq!(s(b"x\x1b(\nnext"), b"x\nnext");
        assert_eq!(s(b"a\x1b\x1b[31mb"), b"ab");
        // CAN/SUB cancel.
        assert_eq!(s(b"a\x1b[31\x18b\x1b]0;t\x1ac"), b"abc");
    }

    #[test]
    fn unterminated_strings_are_bounded() {
        // The body byte after the first MAX_STRING_LEN ones abandons the string.
        let mut input = b"a\x1b]".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_STRING_LEN + 1));
        input.extend_from_slice(b"VISIBLE");
        assert_eq!(s(&input), b"aVISIBLE");
        let mut input = b"a\x1b[".to_vec();
        input.extend(std::iter::repeat_n(b'1', MAX_CSI_LEN + 1));
        input.extend_from_slice(b"mb");
        assert_eq!(s(&input), b"amb");
    }

    #[test]
    fn queries_are_reported() {
        let mut st = AnsiStripper::new();
        let mut out = Vec::new();
        let q = st.feed(
            b"a\x1b[6nb\x1b[5n\x1b[c\x1b[0c\x1b[16n\x1b[?6n\x1b[>c",
            &mut out,
        );
        assert_eq!(out, b"ab");
        assert_eq!(
            q.iter().collect::<Vec<_>>(),
            vec![
                Query::CursorPosition,
                Query::DeviceStatus,
                Query::DeviceAttributes,
                Query::DeviceAttributes
            ]
        );
        assert_eq!(q.cursor_position(), 1);
        assert_eq!(Query::CursorPosition.standard_reply(), b"\x1b[24;80R");
        // Split across calls.
        let mut st = AnsiStripper::new();
        assert!(st.feed(b"\x1b[", &mut out).is_empty());
        assert!(st.in_sequence());
        assert!(st.feed(b"6", &mut out).is_empty());
        assert_eq!(st.feed(b"n", &mut out).cursor_position(), 1);
        assert!(!st.in_sequence());
        // Overlong parameters never look like a query.
        let (_, qs) = feed_chunks(b"\x1b[0000000006n", &[]);
        assert!(qs.is_empty());
    }

    /// Deterministic xorshift generator (no dependency on `rand`).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const FRAGMENTS: &[&[u8]] = &[
        b"text ",
        b"\x1b[0;32m",
        b"\x1b[0m",
        b"\x1b[?2004h",
        b"\x1b[?2004l",
        b"\x1b[6n",
        b"\x1b[5n",
        b"\x1b[c",
        b"\x1b[12;40H",
        b"\x1b[2 q",
        b"\x1b]0;title\x07",
        b"\x1b]2;t\xc3\xa9\x1b\\",
        b"\x1b]8;;http://x\x1b\\",
        b"\x1bP1$r\x1b\\",
        b"\x1b_apc\x1b\\",
        b"\x1b^pm\x1b\\",
        b"\x1bXsos\x1b\\",
        b"\x1b(0",
        b"\x1b)B",
        b"\x1b%G",
        b"\x1b#8",
        b"\x1b=",
        b"\x1b>",
        b"\x1b7",
        b"\x1b8",
        b"\x1bM",
        b"\x1bc",
        b"\x1b",
        b"\x1b[",
        b"\x1b]",
        b"\x1bP",
        b"\x1b(",
        b"\r",
        b"\n",
        b"\r\n",
        b"\r\r\n",
        b"\t",
        b"\x00",
        b"\x07",
        b"\x08",
        b"\x18",
        b"\x1a",
        b"\x7f",
        b"\x9b31m",
        b"\xe2\x80\xa6",
        b"\xc4\x9b",
        b"\xff\xfe",
        b"\xe2\x80",
        b"[  OK  ] ",
        b"login: ",
        b"\\",
    ];

    /// A stream of random fragments; `long_strings` adds strings that cross
    /// the length bound.
    fn adversarial_stream(rng: &mut Rng, fragments: usize, long_strings: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..fragments {
            match rng.below(40) {
                0 if long_strings => {
                    // An overlong OSC to exercise the bound.
                    v.extend_from_slice(b"\x1b]0;");
                    let len = MAX_STRING_LEN - 3 + rng.below(8);
                    v.extend(std::iter::repeat_n(b'y', len));
                }
                1 => {
                    // A random byte, any value.
                    v.push(rng.next() as u8);
                }
                _ => v.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]),
            }
        }
        v
    }

    fn assert_clean(out: &[u8]) {
        for &b in out {
            assert!(
                b >= 0x20 && b != DEL || b == b'\n' || b == b'\t',
                "control byte {b:#04x} in output"
            );
        }
    }

    #[test]
    fn split_at_every_boundary_matches_one_shot() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..44 {
            // The last rounds contain overlong strings (several KiB each).
            let long = round >= 40;
            let input = adversarial_stream(&mut rng, if long { 150 } else { 60 + round }, long);
            if long {
                assert!(
                    input.len() > MAX_STRING_LEN,
                    "round {round} has no long string"
                );
            }
            let (want, want_q) = feed_chunks(&input, &[]);
            assert_clean(&want);
            for cut in 0..=input.len() {
                let (got, got_q) = feed_chunks(&input, &[cut]);
                assert_eq!(got, want, "round {round}, split at {cut}");
                assert_eq!(got_q, want_q, "round {round}, split at {cut}");
            }
            // Byte by byte.
            let cuts: Vec<usize> = (1..input.len()).collect();
            assert_eq!(feed_chunks(&input, &cuts), (want.clone(), want_q.clone()));
            // Random chunkings.
            for _ in 0..20 {
                let mut cuts: Vec<usize> = (0..rng.below(30))
                    .map(|_| rng.below(input.len() + 1))
                    .collect();
                cuts.sort_unstable();
                assert_eq!(feed_chunks(&input, &cuts), (want.clone(), want_q.clone()));
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_and_stay_clean() {
        let mut rng = Rng(42);
        for _ in 0..200 {
            let len = rng.below(2000);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    // Bias towards interesting bytes.
                    match rng.below(6) {
                        0 => 0x1b,
                        1 => b"[]P(\\;?0167n\r\n\x07"[rng.below(15)],
                        _ => rng.next() as u8,
                    }
                })
                .collect();
            let (want, _) = feed_chunks(&input, &[]);
            assert_clean(&want);
            let cut = rng.below(len + 1);
            assert_eq!(feed_chunks(&input, &[cut]).0, want);
        }
    }

    #[test]
    fn real_debian_boot_transcript() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/serial/debian12-systemd-boot-login.log");
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                println!("skipping: fixture {} not readable: {e}", path.display());
                return;
            }
        };
        let out = strip(&raw);
        assert!(!out.contains(&0x1b), "escape byte left in output");
        assert!(!out.contains(&b'\r'), "carriage return left in output");
        assert_clean(&out);
        let text = String::from_utf8(out.clone()).expect("fixture strips to valid UTF-8");
        assert!(text.contains("\ntestvm login: tester\n"));
        assert!(text.contains("\nPassword: \n"));
        assert!(text.contains(
            "\ntester@testvm:~$ systemctl is-system-running --wait; echo RC=$?\n\
             Failed to connect to bus: No such file or directory\nRC=1\n"
        ));
        assert!(text.contains("\nroot@testvm:~# poweroff\n"));
        assert!(text.contains("\nNo jobs running.\nEND4\n"));
        assert!(text.contains("\nvda  254:0    0    2G  0 disk /\n"));
        assert!(text.contains("[  OK  ] Reached target multi-user.target - Multi-User System.\n"));
        assert!(text.contains("SeaBIOS (version 1.16.3-debian-1.16.3-2~bpo12+1)\n"));
        // Sequences cut by systemd's line truncation keep the text after them.
        assert!(text.contains("Mounting dev-mqueue.mount…POSIX Message Queue File System...\n"));
        assert!(text.contains("Mounted dev-mqueue.mount…- POSIX Message Queue File System.\n"));
        // \r\r\n is one line break: no doubled blank lines between kernel lines.
        assert!(text.contains(
            "[    0.000000] Command line: console=ttyS0 root=/dev/vda rw panic=-1\n[    0.000000] BIOS-provided"
        ));
        // Splitting the real transcript anywhere gives the same text.
        for cut in (0..raw.len()).step_by(97) {
            assert_eq!(feed_chunks(&raw, &[cut]).0, out);
        }
        let cuts: Vec<usize> = (1..raw.len()).collect();
        assert_eq!(feed_chunks(&raw, &cuts).0, out);
    }
}
