//! The v2 counts of the worked example of docs/ir.md §10.7 (QPSK, M = N = 2, K = 2 layers of
//! L = 2 steps), counted by hand from the dataflow of §10.3, and their pricing by both models.

use super::super::tests::example_ir;
use super::*;
use crate::energy::{Horowitz45, PaperModel};

fn mults(c: &Counts, per_block: bool) -> u64 {
    c.ops
        .iter()
        .filter(|o| o.per_block == per_block && matches!(o.op, Op::Mul { .. }))
        .map(|o| o.count)
        .sum()
}

fn mults_at(c: &Counts, a: u32, bw: u32) -> u64 {
    c.ops
        .iter()
        .filter(|o| !o.per_block && o.op == Op::Mul { a, b: bw })
        .map(|o| o.count)
        .sum()
}

#[test]
fn multiplies_of_the_worked_example_by_hand() {
    let c = gram_counts(&example_ir());
    // Block: G's 3 distinct entries of 2 products (8×8 bits), and 3 reciprocals (1/tr G,
    // D_0, D_1) of one Newton step each at 12 bits (2 products): 6 + 6.
    assert_eq!(mults(&c, true), 12);
    // Vector: z 4 + yy 2; layer 0 (x = 0): W·(1/tr G) 1, step 0 D·ρ 2, ω·p 2, G·d 4, δ·d 2,
    // step 1 D·ρ 2, β·p 2, ω·p 2, γ·d 2, tv·v² 1 = 20; layer 1 adds G·x 4, xᵀz 2, xᵀe 2: 28.
    assert_eq!(mults(&c, false), 6 + 20 + 28);
    // 12×8: D·ρ (4 per layer) and G·d (4 per layer, one ρ per layer).
    assert_eq!(mults_at(&c, 12, 8), 16);
    // 12×4: G·x of layer 1 only.
    assert_eq!(mults_at(&c, 12, 4), 4);
    // ω codes 7 and 6 are 4-bit signed: 2 steps × 2 entries × 2 layers.
    // And layer 0's γ = 4 (4 bits, 2 entries) and layer 1's xᵀe (4-bit x, 8-bit e).
    assert_eq!(mults_at(&c, 4, 8), 8 + 2 + 2);
    assert_eq!(mults_at(&c, 3, 8), 2 + 2 + 2); // β = 2 in both layers, layer 1's γ = 3
    // G read: G·x of layer 1 and G·d of each layer's step 0, n² = 4 entries of 12 bits each.
    let g_reads: u64 = c
        .ops
        .iter()
        .filter(|o| !o.per_block && o.op == Op::Read { bits: 12 } && o.stage.contains("step"))
        .map(|o| o.count)
        .sum();
    // In the steps 12-bit reads are G (4 per ρ) and D (2 per step): 2 layers × (4 + 2 + 2).
    assert_eq!(g_reads, 2 * (4 + 2 + 2));
}

#[test]
fn block_stage_priced_by_hand_and_amortized() {
    let ir = example_ir();
    let c = gram_counts(&ir);
    // Buffer: 2 frames (4·8 + 2·8 bits), G 4·12, D 2·12, vector state 2·(4 + 12 + 8+8+8+8):
    // 264 bits, the 8 KB class (10 pJ per 64 bits).
    assert_eq!(c.buffer_bits, 96 + 48 + 24 + 96);
    let read = 10.0 / 64.0;
    // Block, model 2: 6 multiplies 8×8 and 6 at 12×12; adds: G's 3 sums of 2 (1 add each at
    // the 17-bit accumulator, bits(2·128²) + 1), 3 rounding adds at 17 and 3 saturations at
    // 13; the trace's add at 13 bits (bits(2·2047) + 1), 1/tr G's clamp at 13 and Newton add
    // at 12, D's 2 clamps at 12 and 2 Newton adds at 12; reads: H̃ 4 × 8 bits, G's diagonal
    // 2 × 12, three 8-bit seeds.
    let mul =
        6.0 * (0.0029948 * 64.0 + 0.0010417 * 8.0) + 6.0 * (0.0029948 * 144.0 + 0.0010417 * 12.0);
    let add_bits =
        3.0 * 17.0 + 3.0 * 17.0 + 3.0 * 13.0 + 13.0 + 13.0 + 12.0 + 2.0 * 12.0 + 2.0 * 12.0;
    let read_bits = 32.0 + 24.0 + 24.0;
    let block_pj = mul + 0.003125 * add_bits + read * read_bits;
    let e1 = Horowitz45.price(&c, 1).total_pj;
    let e4 = Horowitz45.price(&c, 4).total_pj;
    assert!(
        ((e1 - e4) - block_pj * 0.75).abs() < 1e-9,
        "{} vs {}",
        e1 - e4,
        block_pj * 0.75
    );
    // Model 1: the block passes G (6 MACs, 3 activations, 4 weights, Q = 8) and the
    // reciprocals (6 MACs, 3 activations, 3 weights, Q = 12).
    let pm = PaperModel::default();
    let p: f64 = pm.accelerator(6.0, 3.0, 4.0, 8.0).iter().sum::<f64>()
        + pm.accelerator(6.0, 3.0, 3.0, 12.0).iter().sum::<f64>();
    let m1 = pm.price(&c, 1).total_pj - pm.price(&c, 4).total_pj;
    assert!((m1 - p * 0.75).abs() < 1e-9, "{m1} vs {}", p * 0.75);
    // pJ per bit: QPSK, N = 2 real dimensions of 1 bit.
    let e = gram_energy(&ir, 4);
    assert_eq!(e.bits_per_vector, 2);
    assert!((e.horowitz.pj_per_bit * 2.0 - e4).abs() < 1e-9);
    assert!(e.horowitz.pj_per_vector > 0.0 && e.paper.pj_per_vector > 0.0);
}

#[test]
fn narrower_inputs_cost_less() {
    let ir = example_ir();
    let mut narrow = ir.clone();
    narrow.inputs.h = QFormat::signed(6, 3).unwrap();
    // Re-check validity: the example's sums stay bounded at 6-bit H̃.
    narrow.validate().expect("valid");
    let (a, b) = (gram_energy(&ir, 14), gram_energy(&narrow, 14));
    assert!(b.horowitz.pj_per_vector < a.horowitz.pj_per_vector);
    assert!(b.paper.pj_per_vector < a.paper.pj_per_vector);
}

/// A read of b bits is priced b/64 of a 64-bit read: the v2 engine's bank G is `block.g.width`
/// bits wide and each port fetches one entry per read (docs/energy.md §3b), so a narrow entry
/// costs its own bit lines, not a share of a packed 64-bit word (⌊64/b⌋ entries per word
/// would price a 5-bit entry at 1/12 of a read, not 5/64).
#[test]
fn narrow_inner_g_reads_priced_per_bit_by_hand() {
    let ir = example_ir();
    let mut narrow = ir.clone();
    for l in &mut narrow.layers {
        l.g_inner = Some(5);
    }
    narrow.validate().expect("valid");
    let (a, b) = (gram_counts(&ir), gram_counts(&narrow));
    // G·d (one ρ per layer, n² = 4 entries): 8 reads at 12 bits become 8 at 5 bits; G·x of
    // layer 1 keeps the full 12-bit G.
    let reads = |c: &Counts, bits: u32| -> u64 {
        c.ops
            .iter()
            .filter(|o| !o.per_block && o.op == Op::Read { bits } && o.stage.contains("step"))
            .map(|o| o.count)
            .sum()
    };
    assert_eq!(reads(&a, 12), 2 * (4 + 2 + 2));
    assert_eq!(reads(&b, 12), 2 * (2 + 2));
    assert_eq!(reads(&b, 5), 2 * 4);
    assert_eq!(mults_at(&b, 12, 8), 8); // D·ρ only
    assert_eq!(mults_at(&b, 5, 8), 8); // G·d
    assert_eq!(mults_at(&b, 12, 4), 4); // G·x of layer 1, full G
    // The buffer holds the 5-bit copy too (4 entries): still the 8 KB class, 10 pJ per 64 bits.
    assert_eq!(b.buffer_bits, a.buffer_bits + 4 * 5);
    let (ea, eb) = (Horowitz45.price(&a, 4), Horowitz45.price(&b, 4));
    assert!((eb.read_pj_per_bit - 10.0 / 64.0).abs() < 1e-12);
    // Per vector: 8 entries × 7 bits fewer = 56 bits × 10/64 pJ = 8.75 pJ.
    assert!(
        ((ea.memory_pj - eb.memory_pj) - 8.75).abs() < 1e-9,
        "{} vs 8.75",
        ea.memory_pj - eb.memory_pj
    );
    // The block stage writes the copy: per distinct entry (3) a rounding add at 12 bits and a
    // saturation at 5, spread over T = 4 vectors.
    let block_adds = |c: &Counts| -> f64 {
        c.ops
            .iter()
            .filter(|o| o.per_block && o.stage == "block G")
            .map(|o| match o.op {
                Op::Add { w } => o.count as f64 * f64::from(w),
                _ => 0.0,
            })
            .sum()
    };
    assert!((block_adds(&b) - block_adds(&a) - 3.0 * (12.0 + 5.0)).abs() < 1e-12);
}
