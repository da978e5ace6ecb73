//! Ports of a Verilated model: name, width and direction, as the caller (kaq-codegen) declares
//! them. Guarantees: a validated [`Port`] has a name that is the same identifier in Verilog and
//! in the C++ Verilator emits (so the shim can name it), and a width in `1..=MAX_PORT_WIDTH`.
//! Also the bit-level conventions every accessor uses: masking to width, sign extension, and
//! 32-bit words least significant first for ports wider than 64 bits.

use std::fmt;

use crate::error::SimError;

/// The widest port kaq-sim accepts (Verilator itself allows more; nothing kaq emits comes close).
pub const MAX_PORT_WIDTH: u32 = 65_536;

/// Direction of a port, seen from the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Driven by the testbench (Rust).
    Input,
    /// Driven by the design.
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// One port of the top module.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Port {
    /// Identifier, as in the Verilog source.
    pub name: String,
    /// Width in bits.
    pub width: u32,
    /// Direction.
    pub direction: Direction,
}

impl Port {
    /// An input port.
    pub fn input(name: impl Into<String>, width: u32) -> Self {
        Port {
            name: name.into(),
            width,
            direction: Direction::Input,
        }
    }

    /// An output port.
    pub fn output(name: impl Into<String>, width: u32) -> Self {
        Port {
            name: name.into(),
            width,
            direction: Direction::Output,
        }
    }

    /// Whether the port is accessed through 32-bit words (wider than 64 bits).
    pub fn is_wide(&self) -> bool {
        self.width > 64
    }

    /// Number of 32-bit words that hold the port's value.
    pub fn words(&self) -> usize {
        self.width.div_ceil(32) as usize
    }

    /// Checks the name and the width.
    pub fn validate(&self) -> Result<(), SimError> {
        validate_identifier("port", &self.name)?;
        if self.width == 0 || self.width > MAX_PORT_WIDTH {
            return Err(SimError::InvalidWidth {
                port: self.name.clone(),
                width: self.width,
                max: MAX_PORT_WIDTH,
            });
        }
        Ok(())
    }
}

/// The low `width` bits set (`width` in 1..=64).
pub fn mask(width: u32) -> u64 {
    debug_assert!((1..=64).contains(&width));
    u64::MAX >> (64 - width)
}

/// Interprets the low `width` bits of `value` as two's complement (`width` in 1..=64).
pub fn sign_extend(value: u64, width: u32) -> i64 {
    debug_assert!((1..=64).contains(&width));
    let shift = 64 - width;
    ((value << shift) as i64) >> shift
}

/// Clears the bits above `width` in a word slice holding a `width`-bit value, LSW first.
pub fn mask_words(words: &mut [u32], width: u32) {
    let full = (width / 32) as usize;
    let rem = width % 32;
    if rem != 0 && full < words.len() {
        words[full] &= u32::MAX >> (32 - rem);
        words[full + 1..].fill(0);
    } else if full < words.len() {
        words[full..].fill(0);
    }
}

/// C++ keywords (and a few reserved names) that cannot be used as member names in the
/// Verilated class without Verilator renaming them.
const CXX_RESERVED: &[&str] = &[
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "auto",
    "bitand",
    "bitor",
    "bool",
    "break",
    "case",
    "catch",
    "char",
    "char8_t",
    "char16_t",
    "char32_t",
    "class",
    "compl",
    "concept",
    "const",
    "consteval",
    "constexpr",
    "constinit",
    "const_cast",
    "continue",
    "co_await",
    "co_return",
    "co_yield",
    "decltype",
    "default",
    "delete",
    "do",
    "double",
    "dynamic_cast",
    "else",
    "enum",
    "explicit",
    "export",
    "extern",
    "false",
    "float",
    "for",
    "friend",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "not",
    "not_eq",
    "nullptr",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "register",
    "reinterpret_cast",
    "requires",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "static_assert",
    "static_cast",
    "struct",
    "switch",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typedef",
    "typeid",
    "typename",
    "union",
    "unsigned",
    "using",
    "virtual",
    "void",
    "volatile",
    "wchar_t",
    "while",
    "xor",
    "xor_eq",
    "final",
    "override",
    "eval",
    "trace",
    "name",
    "contextp",
    "rootp",
    "vlSymsp",
];

/// Checks that `name` is a simple identifier that Verilator keeps unchanged in C++:
/// `[A-Za-z][A-Za-z0-9_]*`, no `__` (Verilator escapes it), not a C++ keyword.
pub fn validate_identifier(what: &'static str, name: &str) -> Result<(), SimError> {
    let reject = |reason| {
        Err(SimError::InvalidName {
            what,
            name: name.to_string(),
            reason,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return reject("it is empty"),
        Some(c) if !c.is_ascii_alphabetic() => return reject("it must start with a letter"),
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return reject("only ASCII letters, digits and `_` are allowed");
    }
    if name.contains("__") {
        return reject("Verilator escapes `__` in C++ names");
    }
    if CXX_RESERVED.contains(&name) {
        return reject("it is a C++ keyword or a Verilated class member");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_sign_extend_agree_with_shifts() {
        assert_eq!(mask(1), 1);
        assert_eq!(mask(12), 0xfff);
        assert_eq!(mask(64), u64::MAX);
        assert_eq!(sign_extend(0xfff, 12), -1);
        assert_eq!(sign_extend(0x800, 12), -2048);
        assert_eq!(sign_extend(0x7ff, 12), 2047);
        assert_eq!(
            sign_extend(0xf7ff, 12),
            2047,
            "bits above the width are ignored"
        );
        assert_eq!(sign_extend(u64::MAX, 64), -1);
    }

    #[test]
    fn mask_words_clears_bits_above_width() {
        let mut w = [u32::MAX; 3];
        mask_words(&mut w, 70);
        assert_eq!(w, [u32::MAX, u32::MAX, 0x3f]);
        let mut w = [u32::MAX; 3];
        mask_words(&mut w, 64);
        assert_eq!(w, [u32::MAX, u32::MAX, 0]);
        let mut w = [u32::MAX; 3];
        mask_words(&mut w, 96);
        assert_eq!(w, [u32::MAX; 3]);
    }

    #[test]
    fn identifiers_are_checked() {
        for good in ["clk", "a", "in_valid", "x0_q", "Acc12"] {
            assert!(validate_identifier("port", good).is_ok(), "{good}");
        }
        for bad in ["", "_a", "0a", "a b", "a__b", "class", "new", "a-b", "é"] {
            let err = validate_identifier("port", bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{bad}`")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn widths_are_checked() {
        assert!(Port::input("a", 1).validate().is_ok());
        assert!(Port::input("a", MAX_PORT_WIDTH).validate().is_ok());
        for w in [0, MAX_PORT_WIDTH + 1] {
            let err = Port::output("a", w).validate().unwrap_err();
            assert!(matches!(err, SimError::InvalidWidth { width, .. } if width == w));
        }
        assert_eq!(Port::input("a", 96).words(), 3);
        assert_eq!(Port::input("a", 65).words(), 3);
        assert!(Port::input("a", 65).is_wide() && !Port::input("a", 64).is_wide());
    }
}
