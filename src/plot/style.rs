//! The one visual language of every kaq plot: a fixed colour per detector kind, the link's
//! name, and the text style of titles and axis labels.
//!
//! Colours come from the Okabe–Ito colour-blind-safe set, without its yellow (illegible on
//! white). A detector's kind is read from its name (the names `Detector::name` gives), so the
//! same detector has the same colour in every plot, whichever command drew it. Several series
//! of one kind in one plot (for example the quantization methods of `kaq compare`) keep the
//! kind's hue and differ by shade and marker shape.

use kaq_ir::Modulation;
use plotters::style::RGBColor;

/// What a plotted series is, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The linear MMSE detector (`mmse`).
    Mmse,
    /// Zero forcing (`zf`).
    Zf,
    /// K-best sphere decoding (`kbest:K`, `kbest-reg:K`, `kbest-zf:K`).
    KBest,
    /// Exhaustive maximum likelihood (`ml`).
    Ml,
    /// The built design: the integer golden model (`…-int`) and quantized nets
    /// (`…-8b`, `kaq@4`).
    Design,
    /// An f32 unfolded net, the paper's detector (`pgd-soft-k5`, `cg-k4-l2`, `fp32`).
    Net,
    /// Anything else (training curves, area figures, other references).
    Other,
}

/// The fixed colour of each detector kind.
pub fn colour(kind: Kind) -> RGBColor {
    match kind {
        Kind::Mmse => RGBColor(0xD5, 0x5E, 0x00),   // vermillion
        Kind::Zf => RGBColor(0xCC, 0x79, 0xA7),     // reddish purple
        Kind::KBest => RGBColor(0x00, 0x9E, 0x73),  // bluish green
        Kind::Ml => RGBColor(0x00, 0x00, 0x00),     // black
        Kind::Design => RGBColor(0x00, 0x72, 0xB2), // blue
        Kind::Net => RGBColor(0x7B, 0x3F, 0x9E),    // purple
        Kind::Other => RGBColor(0x66, 0x66, 0x66),  // grey
    }
}

/// Colours for series of no detector kind (loss curves, area figures), in order of appearance.
pub const OTHER_COLOURS: [RGBColor; 6] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x66, 0x66, 0x66),
];

/// The kind of the detector named `name` (case-insensitive).
pub fn kind_of(name: &str) -> Kind {
    let n = name.trim().to_ascii_lowercase();
    let quantized = n.contains('@')
        || n.rsplit_once('-').is_some_and(|(_, tail)| {
            tail.strip_suffix('b')
                .or_else(|| tail.strip_suffix("bit"))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        });
    let layers = n.split('-').any(|part| {
        part.len() > 1 && part.starts_with('k') && part[1..].bytes().all(|b| b.is_ascii_digit())
    });
    match n.as_str() {
        "mmse" => Kind::Mmse,
        "zf" => Kind::Zf,
        "ml" => Kind::Ml,
        "fp32" | "f32" => Kind::Net,
        _ if n.starts_with("kbest") => Kind::KBest,
        _ if n.ends_with("-int") || quantized => Kind::Design,
        _ if layers => Kind::Net,
        _ => Kind::Other,
    }
}

/// The colour of the `nth` (0-based) series of its kind in one plot: the kind's colour, then
/// lighter and darker shades of it; series of [`Kind::Other`] cycle through
/// [`OTHER_COLOURS`] instead.
pub fn series_colour(kind: Kind, nth: usize) -> RGBColor {
    if kind == Kind::Other {
        return OTHER_COLOURS[nth % OTHER_COLOURS.len()];
    }
    let RGBColor(r, g, b) = colour(kind);
    // 1.0 = the kind's colour; above 1 towards white, below 1 darker (the lighter shade first:
    // two dark shades of different hues look alike).
    const SHADES: [f64; 3] = [1.0, 1.35, 0.5];
    let s = SHADES[nth % SHADES.len()];
    let f = |c: u8| {
        let c = c as f64;
        let v = if s <= 1.0 {
            c * s
        } else {
            c + (255.0 - c) * (s - 1.0)
        };
        v.round().clamp(0.0, 255.0) as u8
    };
    RGBColor(f(r), f(g), f(b))
}

/// The quantization methods, in the order of their fixed shade (see [`variant`]).
pub const METHODS: [&str; 4] = ["ptq", "qat-mse", "lsq", "kaq"];

/// The fixed shade index of a quantized series named after its method (`lsq@4`,
/// `pgd-soft-k5-kaq-8b`), so a method keeps its shade in every plot; `None` for other names.
pub fn variant(name: &str) -> Option<usize> {
    let n = name.trim().to_ascii_lowercase();
    METHODS
        .iter()
        .position(|m| n.starts_with(&format!("{m}@")) || n.contains(&format!("-{m}-")))
}

/// Whether the `nth` series of its kind is drawn dashed (from the fourth on, after the three
/// shades of [`series_colour`] are used up); series of [`Kind::Other`] never are.
pub fn dashed(kind: Kind, nth: usize) -> bool {
    kind != Kind::Other && (nth / 3) % 2 == 1
}

/// The link's name in titles and tables: `16×16 16-QAM` (transmit × receive antennas).
pub fn link_name(nt: usize, nr: usize, modulation: Modulation) -> String {
    let m = match modulation {
        Modulation::Bpsk => "BPSK",
        Modulation::Qpsk => "QPSK",
        Modulation::Qam16 => "16-QAM",
        Modulation::Qam64 => "64-QAM",
    };
    format!("{nt}×{nr} {m}")
}

/// The x-axis label of every BER plot.
pub const SNR_AXIS: &str = "SNR per receive antenna (dB)";

/// Puts a title or axis label in the house style: units in parentheses (`[dB]` → `(dB)`) and
/// a link written `16x16 16qam` named as [`link_name`] does.
pub fn house_style(text: &str) -> String {
    let text = text.replace('[', "(").replace(']', ")");
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if let Some((nt, nr)) = antennas(words[i])
            && let Some(m) = words.get(i + 1).and_then(|w| modulation_word(w))
        {
            let (m, rest) = m;
            out.push(format!("{}{rest}", link_name(nt, nr, m)));
            i += 2;
            continue;
        }
        out.push(words[i].to_string());
        i += 1;
    }
    out.join(" ")
}

/// `16x16` or `16×16` as antenna counts.
fn antennas(word: &str) -> Option<(usize, usize)> {
    let (a, b) = word.split_once('x').or_else(|| word.split_once('×'))?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A modulation word (`16qam`, `16qam:`, `16-QAM,`) and the punctuation after it.
fn modulation_word(word: &str) -> Option<(Modulation, &str)> {
    let end = word.find([',', ':', ';', ')']).unwrap_or(word.len());
    let (head, rest) = word.split_at(end);
    let m = match head.to_ascii_lowercase().replace('-', "").as_str() {
        "bpsk" => Modulation::Bpsk,
        "qpsk" => Modulation::Qpsk,
        "16qam" => Modulation::Qam16,
        "64qam" => Modulation::Qam64,
        _ => return None,
    };
    Some((m, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_detector_name_maps_to_its_kind() {
        for (name, kind) in [
            ("mmse", Kind::Mmse),
            ("MMSE", Kind::Mmse),
            ("zf", Kind::Zf),
            ("kbest:32", Kind::KBest),
            ("kbest-zf:8", Kind::KBest),
            ("kbest-reg:4", Kind::KBest),
            ("ml", Kind::Ml),
            ("pgd-soft-k5-kaq-8b-int", Kind::Design),
            ("pgd-soft-k5-int", Kind::Design),
            ("pgd-soft-k5-kaq-8b", Kind::Design),
            ("kaq@4", Kind::Design),
            ("fp32", Kind::Net),
            ("pgd-soft-k5", Kind::Net),
            ("pgd-soft-k10-momentum-mf", Kind::Net),
            ("cg-k4-l2", Kind::Net),
            ("train", Kind::Other),
            ("LUTs", Kind::Other),
            ("mf", Kind::Other),
        ] {
            assert_eq!(kind_of(name), kind, "{name}");
        }
    }

    #[test]
    fn colours_are_fixed_distinct_and_not_yellow() {
        let kinds = [
            Kind::Mmse,
            Kind::Zf,
            Kind::KBest,
            Kind::Ml,
            Kind::Design,
            Kind::Net,
            Kind::Other,
        ];
        assert_eq!(colour(Kind::Mmse), RGBColor(0xD5, 0x5E, 0x00));
        assert_eq!(colour(Kind::KBest), RGBColor(0x00, 0x9E, 0x73));
        assert_eq!(colour(Kind::Design), RGBColor(0x00, 0x72, 0xB2));
        assert_eq!(colour(Kind::Net), RGBColor(0x7B, 0x3F, 0x9E));
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                assert_ne!(colour(*a), colour(*b), "{a:?} and {b:?}");
            }
        }
        // Yellow: red and green high, blue low.
        let yellowish = |RGBColor(r, g, b): RGBColor| r > 0xC0 && g > 0xA0 && b < 0x60;
        for k in kinds {
            for nth in 0..4 {
                assert!(!yellowish(series_colour(k, nth)), "{k:?} #{nth}");
            }
        }
        for c in OTHER_COLOURS {
            assert!(!yellowish(c));
        }
        assert_eq!(series_colour(Kind::Mmse, 0), colour(Kind::Mmse));
        assert_ne!(series_colour(Kind::Design, 1), colour(Kind::Design));
        assert_ne!(
            series_colour(Kind::Design, 2),
            series_colour(Kind::Design, 1)
        );
        assert!(!dashed(Kind::Design, 2) && dashed(Kind::Design, 3));
        // The second series of a kind is lighter and the third darker, so the second series of
        // two kinds (the paper's PGD-Net beside a QAT-MSE design) are not two near-black lines.
        let sum = |RGBColor(r, g, b): RGBColor| r as u32 + g as u32 + b as u32;
        for k in [Kind::Design, Kind::Net, Kind::Mmse, Kind::KBest] {
            assert!(sum(series_colour(k, 1)) > sum(colour(k)), "{k:?}");
            assert!(sum(series_colour(k, 2)) < sum(colour(k)), "{k:?}");
        }
        assert!(!dashed(Kind::Other, 3));
    }

    #[test]
    fn a_method_keeps_its_shade_whatever_else_is_plotted() {
        assert_eq!(variant("ptq@4"), Some(0));
        assert_eq!(variant("qat-mse@8"), Some(1));
        assert_eq!(variant("pgd-soft-k5-lsq-8b"), Some(2));
        assert_eq!(variant("pgd-soft-k5-kaq-8b-int"), Some(3));
        assert_eq!(variant("fp32"), None);
        assert_eq!(variant("mmse"), None);
    }

    #[test]
    fn links_are_named_one_way() {
        assert_eq!(link_name(16, 16, Modulation::Qam16), "16×16 16-QAM");
        assert_eq!(link_name(2, 4, Modulation::Qpsk), "2×4 QPSK");
        assert_eq!(
            house_style("BER, 16x16 16qam Rayleigh"),
            "BER, 16×16 16-QAM Rayleigh"
        );
        assert_eq!(
            house_style("BER, 16×16 16qam: net and references"),
            "BER, 16×16 16-QAM: net and references"
        );
        assert_eq!(house_style("SNR per receive antenna [dB]"), SNR_AXIS);
        assert_eq!(house_style("epoch"), "epoch");
        assert_eq!(house_style("100 x DSPs"), "100 x DSPs");
    }
}
