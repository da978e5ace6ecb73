use proptest::prelude::*;

use super::*;
use crate::ber::simulate;
use crate::ber::tests::{Genie, MatchedFilter};
use crate::link::LinkConfig;
use crate::modulation::Modulation;

fn small_config(min_errors: u64, max_frames: u64, batch_frames: usize) -> BerConfig {
    let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
    let mut config = BerConfig::new(link, vec![0.0, 8.0, 16.0], min_errors, max_frames, 11);
    config.batch_frames = batch_frames;
    config.threads = Some(1);
    config
}

fn sweep_of(config: &BerConfig, detectors: &[&dyn Detector]) -> Sweep {
    let names: Vec<String> = detectors.iter().map(|d| d.name()).collect();
    Sweep {
        config: config.clone(),
        config_hash: config_hash(config, &names, &[]),
        detectors: names,
    }
}

/// Runs every shard of a round through its file text (as separate processes would).
fn run_round(
    sweep: &Sweep,
    detectors: &[&dyn Detector],
    plan: &RoundPlan,
    after: Option<&SweepState>,
    count: u32,
) -> Vec<NamedShard> {
    (0..count)
        .map(|i| {
            let spec = ShardSpec::new(i, count).unwrap();
            let file = run_shard(
                sweep,
                detectors,
                plan,
                after.map(|s| s.digest.as_str()),
                spec,
                None,
            )
            .unwrap();
            let name = format!("shard-{}-{i}-of-{count}.json", plan.round);
            let file = ShardFile::from_json(&file.to_json(), &name).unwrap();
            NamedShard { name, file }
        })
        .collect()
}

/// A whole sharded sweep: round after round, with `count(round)` shards, until every point
/// stops. Returns the rows and the number of rounds.
fn sharded(
    config: &BerConfig,
    detectors: &[&dyn Detector],
    first: u64,
    count: impl Fn(u32) -> u32,
) -> (Vec<BerPoint>, u32) {
    let sweep = sweep_of(config, detectors);
    let mut plan = RoundPlan::first(config, detectors.len(), first).unwrap();
    let mut state: Option<SweepState> = None;
    loop {
        let shards = run_round(&sweep, detectors, &plan, state.as_ref(), count(plan.round));
        let merged = merge(state.as_ref().map(|s| ("state.json", s)), &shards).unwrap();
        if let Some(rows) = merged.rows() {
            assert!(merged.next_state().is_none());
            return (rows, merged.rounds);
        }
        let next = merged.next_state().expect("a point still needs batches");
        let next = SweepState::from_json(&next.to_json(), "state.json").unwrap();
        plan = next.next.clone();
        assert_eq!(plan.round, merged.rounds);
        state = Some(next);
        // Every round grows an open point's batches by at least half.
        let cap = config.batches_per_point().max(1);
        assert!(
            f64::from(plan.round) <= 3.0 + (cap as f64).ln() / 1.5f64.ln(),
            "round {} of a sweep capped at {cap} batches per point",
            plan.round
        );
    }
}

#[test]
fn shard_specs_parse_and_name_the_problem() {
    assert_eq!(
        "3/8".parse::<ShardSpec>().unwrap(),
        ShardSpec::new(3, 8).unwrap()
    );
    assert_eq!("0/1".parse::<ShardSpec>().unwrap().to_string(), "0/1");
    for (bad, needle) in [
        ("8/8", "below the shard count"),
        ("1/0", "between 1 and"),
        ("x/2", "`x`"),
        ("3", "INDEX/COUNT"),
        ("-1/2", "`-1`"),
    ] {
        let err = bad.parse::<ShardSpec>().unwrap_err();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[test]
fn shards_partition_the_units_of_a_round() {
    // Ranges of different lengths per detector: the segments split each point where the set
    // of detectors changes.
    let plan = RoundPlan {
        round: 1,
        ranges: vec![
            BatchRange {
                detector: 0,
                point: 0,
                start: 3,
                end: 9,
            },
            BatchRange {
                detector: 1,
                point: 0,
                start: 5,
                end: 20,
            },
            BatchRange {
                detector: 1,
                point: 2,
                start: 0,
                end: 4,
            },
        ],
    };
    let all = plan.shard_units(ShardSpec::new(0, 1).unwrap());
    assert_eq!(all.len() as u64, plan.units());
    assert_eq!(plan.units(), 17 + 4);
    assert_eq!(plan.batch_runs(), 6 + 15 + 4);
    assert_eq!(all[0], (0, 3, vec![0]));
    assert_eq!(all[2], (0, 5, vec![0, 1]));
    assert_eq!(all[6], (0, 9, vec![1]));
    assert_eq!(all[17], (2, 0, vec![1]));
    for n in [1, 2, 3, 7, 21, 64] {
        let mut union: Vec<(usize, u64, Vec<usize>)> = (0..n)
            .flat_map(|i| plan.shard_units(ShardSpec::new(i, n).unwrap()))
            .collect();
        union.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(union, want, "{n} shards");
        // Interleaved: shard sizes differ by at most one unit.
        let sizes: Vec<usize> = (0..n)
            .map(|i| plan.shard_units(ShardSpec::new(i, n).unwrap()).len())
            .collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }
}

#[test]
fn merge_equals_one_machine_for_1_2_7_and_64_shards() {
    let config = small_config(150, 1500, 32);
    let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
    let want = simulate(&config, &detectors, None).unwrap();
    // The sweep mixes both stops: MF at 0 dB stops on errors, Genie always on frames.
    assert!(
        want.iter()
            .any(|r| r.stop == super::super::StopReason::MinErrors)
    );
    assert!(
        want.iter()
            .any(|r| r.stop == super::super::StopReason::MaxFrames)
    );
    for n in [1, 2, 7, 64] {
        let (rows, rounds) = sharded(&config, &detectors, 2, |_| n);
        assert_eq!(rows, want, "{n} shards");
        assert!(rounds >= 2, "the small first round needs more rounds");
    }
    // A shard count that changes from round to round gives the same rows, and so does a first
    // round that covers everything.
    assert_eq!(sharded(&config, &detectors, 1, |r| 1 + 3 * r).0, want);
    assert_eq!(sharded(&config, &detectors, 1 << 20, |_| 3), (want, 1));
}

#[test]
fn empty_shards_are_valid_when_there_are_more_shards_than_units() {
    let config = small_config(10, 64, 32);
    let detectors: [&dyn Detector; 1] = [&MatchedFilter];
    let want = simulate(&config, &detectors, None).unwrap();
    let plan = RoundPlan::first(&config, 1, 1).unwrap();
    assert_eq!(plan.units(), 3);
    let (rows, _) = sharded(&config, &detectors, 1, |_| 64);
    assert_eq!(rows, want);
}

#[test]
fn reruns_of_a_shard_are_bit_identical() {
    let config = small_config(100, 600, 16);
    let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
    let sweep = sweep_of(&config, &detectors);
    let plan = RoundPlan::first(&config, 2, 4).unwrap();
    let spec = ShardSpec::new(1, 3).unwrap();
    let once = run_shard(&sweep, &detectors, &plan, None, spec, None).unwrap();
    let mut two_threads = config.clone();
    two_threads.threads = Some(2);
    let sweep2 = Sweep {
        config: two_threads,
        ..sweep.clone()
    };
    let again = run_shard(&sweep2, &detectors, &plan, None, spec, None).unwrap();
    assert_eq!(once.to_json(), again.to_json());
}

#[test]
fn next_round_follows_the_error_rate_and_respects_the_cap() {
    let config = small_config(100, 10_000, 10);
    let cap = config.batches_per_point();
    let bits_per_batch = 10 * 4;
    let running = |batches: u64, bit_errors: u64| PointState {
        batches,
        tally: ErrorTally {
            frames: batches * 10,
            bits: batches * bits_per_batch,
            bit_errors,
            symbols: batches * 20,
            symbol_errors: bit_errors,
        },
        stop: None,
    };
    let done = PointState {
        stop: Some(super::super::StopReason::MinErrors),
        ..running(4, 200)
    };
    // Detector-major: detector 0 at the three points, then detector 1.
    let states = [
        running(4, 50), // half way: about twice the batches, with margin
        done,
        running(4, 0), // no error yet: a large step, capped
        running(999, 0),
        running(4, 99),
        running(4, 100_000), // cannot happen unstopped, but never plans backwards
    ];
    let plan = RoundPlan::next(&config, &states, 5).unwrap();
    assert_eq!(plan.round, 5);
    let range = |d: usize, p: usize| plan.ranges.iter().find(|r| (r.detector, r.point) == (d, p));
    assert!(range(0, 1).is_none(), "a stopped point gets no batches");
    let half = range(0, 0).unwrap();
    assert_eq!(half.start, 4);
    // 50 errors in 160 bits: the Wilson upper end is about 0.39, so 1.5·100/0.39 bits, about
    // 10 batches; at the point estimate 0.31 alone it would be 12.
    assert!((9..=11).contains(&half.end), "{half:?}");
    // No error in 160 bits: the upper end is z²/(160 + z²), a lower bound on the batches the
    // point needs; the margin multiplies it.
    let high = Z_95 * Z_95 / (160.0 + Z_95 * Z_95);
    let zero = range(0, 2).unwrap();
    assert_eq!(
        zero.end,
        (ROUND_MARGIN * 100.0 / (high * 40.0)).ceil() as u64
    );
    assert!(zero.end > 150, "{zero:?}");
    // Capped by max_frames.
    assert_eq!(
        range(1, 0).unwrap(),
        &BatchRange {
            detector: 1,
            point: 0,
            start: 999,
            end: cap
        }
    );
    // One error short: a batch or two more.
    assert!((5..=7).contains(&range(1, 1).unwrap().end));
    // At least half the batches run so far (and one), never backwards.
    assert_eq!(range(1, 2).unwrap().end, 6);
    for r in &plan.ranges {
        assert!(r.start < r.end && r.end <= cap, "{r:?}");
    }
    let all_done = [done; 6];
    assert!(RoundPlan::next(&config, &all_done, 1).is_none());
}

fn round0(count: u32) -> (BerConfig, Sweep, Vec<NamedShard>) {
    let config = small_config(200, 800, 16);
    let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
    let sweep = sweep_of(&config, &detectors);
    let plan = RoundPlan::first(&config, 2, 4).unwrap();
    let shards = run_round(&sweep, &detectors, &plan, None, count);
    (config, sweep, shards)
}

#[test]
fn merge_refuses_overlaps_gaps_and_foreign_shards_naming_the_file() {
    let (config, _, shards) = round0(3);
    // The same shard twice.
    let mut twice = shards.clone();
    twice.push(NamedShard {
        name: "copy.json".into(),
        file: shards[1].file.clone(),
    });
    let err = merge(None, &twice).unwrap_err();
    assert!(matches!(err, ShardError::Overlap { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("copy.json") && text.contains(&shards[1].name),
        "{text}"
    );
    // Shards of two shard counts that overlap.
    let (_, _, two) = round0(2);
    let mixed = vec![shards[0].clone(), two[0].clone()];
    let err = merge(None, &mixed).unwrap_err();
    assert!(matches!(err, ShardError::Overlap { .. }), "{err}");
    // A missing shard.
    let err = merge(None, &shards[..2]).unwrap_err();
    assert!(err.to_string().contains("no file of shard 2/3"), "{err}");
    assert!(matches!(err, ShardError::Missing { .. }), "{err}");
    // Another configuration.
    let mut other = config.clone();
    other.seed += 1;
    let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
    let foreign = run_round(
        &sweep_of(&other, &detectors),
        &detectors,
        &RoundPlan::first(&other, 2, 4).unwrap(),
        None,
        3,
    );
    let mut bad = shards.clone();
    bad[2] = NamedShard {
        name: "foreign.json".into(),
        file: foreign[2].file.clone(),
    };
    let err = merge(None, &bad).unwrap_err();
    assert!(
        matches!(err, ShardError::OtherConfig { ref file, .. } if file == "foreign.json"),
        "{err}"
    );
    // Another first round.
    let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
    let wider = run_round(
        &sweep_of(&config, &detectors),
        &detectors,
        &RoundPlan::first(&config, 2, 5).unwrap(),
        None,
        3,
    );
    bad = shards.clone();
    bad[0] = NamedShard {
        name: "wider.json".into(),
        file: wider[0].file.clone(),
    };
    let err = merge(None, &bad).unwrap_err();
    assert!(matches!(err, ShardError::OtherRound { .. }), "{err}");
    assert!(err.to_string().contains("wider.json"), "{err}");
    assert!(matches!(merge(None, &[]), Err(ShardError::NoShards)));
}

#[test]
fn later_rounds_need_their_state() {
    let (_, sweep, shards) = round0(2);
    let merged = merge(None, &shards).unwrap();
    let state = merged
        .next_state()
        .expect("800 frames with few errors need a second round");
    let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
    let round1 = run_round(&sweep, &detectors, &state.next, Some(&state), 2);
    let err = merge(None, &round1).unwrap_err();
    assert!(err.to_string().contains("--after"), "{err}");
    // Round-0 shards against the state of round 1.
    let err = merge(Some(("state.json", &state)), &shards).unwrap_err();
    assert!(err.to_string().contains("state.json"), "{err}");
    // Another state of the same sweep (one more shard in round 0 changes nothing, so derive
    // a state that differs: one round later).
    let merged1 = merge(Some(("state.json", &state)), &round1).unwrap();
    if let Some(state2) = merged1.next_state() {
        let err = merge(Some(("state2.json", &state2)), &round1).unwrap_err();
        assert!(matches!(err, ShardError::OtherRound { .. }), "{err}");
    }
}

#[test]
fn corrupt_files_are_refused_naming_the_file() {
    let (_, _, shards) = round0(2);
    let text = shards[0].file.to_json();
    let cases: Vec<(String, &str)> = vec![
        (text[..text.len() / 2].to_string(), "not valid JSON"),
        (
            text.replacen("\"bit_errors\":", "\"bit_errors\":1", 1),
            "digest",
        ),
        (text.replace(SHARD_KIND, STATE_KIND), "kind"),
        ("{}".to_string(), "not valid JSON"),
    ];
    for (bad, needle) in cases {
        let err = ShardFile::from_json(&bad, "bad.json").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.json: "), "{msg}");
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    // Counts that do not fit, with a digest made to match: caught by the unit checks.
    let mut forged = shards[0].file.clone();
    forged.counts[0].batches[0].bit_errors = forged.counts[0].batches[0].bits + 1;
    forged.digest = String::new();
    forged.digest = digest_of(&forged);
    let err = ShardFile::from_json(&forged.to_json(), "forged.json").unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
    let mut forged = shards[0].file.clone();
    forged.counts[0].batches.pop();
    forged.digest = String::new();
    forged.digest = digest_of(&forged);
    let err = ShardFile::from_json(&forged.to_json(), "forged.json").unwrap_err();
    assert!(err.to_string().contains("shard 0/2"), "{err}");
    // A state file edited by hand.
    let state = merge(None, &shards).unwrap().next_state().unwrap();
    let edited = state
        .to_json()
        .replacen("\"batches\": 4", "\"batches\": 3", 1);
    let err = SweepState::from_json(&edited, "state.json").unwrap_err();
    assert!(err.to_string().starts_with("state.json: "), "{err}");
}

#[test]
fn config_hash_covers_results_not_threads() {
    let config = small_config(100, 600, 16);
    let names = vec!["mf".to_string()];
    let h = config_hash(&config, &names, &[b"model"]);
    assert_eq!(h.len(), 64);
    let mut threads = config.clone();
    threads.threads = Some(7);
    assert_eq!(config_hash(&threads, &names, &[b"model"]), h);
    let mut seed = config.clone();
    seed.seed += 1;
    assert_ne!(config_hash(&seed, &names, &[b"model"]), h);
    assert_ne!(config_hash(&config, &["zf".to_string()], &[b"model"]), h);
    assert_ne!(config_hash(&config, &names, &[b"model2"]), h);
    assert_ne!(config_hash(&config, &names, &[b"mod", b"el"]), h);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the stopping targets, batch size, first round and shard counts per round, the
    /// sharded sweep's rows equal the single-machine rows.
    #[test]
    fn sharded_sweep_equals_one_machine(
        min_errors in 1u64..400,
        max_frames in 1u64..1200,
        batch_frames in 1usize..48,
        first in 1u64..6,
        counts in proptest::collection::vec(1u32..9, 8),
        seed in 0u64..1000,
    ) {
        let mut config = small_config(min_errors, max_frames, batch_frames);
        config.seed = seed;
        let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
        let want = simulate(&config, &detectors, None).unwrap();
        let (rows, _) = sharded(&config, &detectors, first, |r| counts[r as usize % counts.len()]);
        prop_assert_eq!(rows, want);
    }

    /// The merge does not depend on how a round's batches are split into files: any partition
    /// of one full round's counts into pieces merges to the same states.
    #[test]
    fn merge_over_any_partition_of_batches(
        pieces in 1usize..6,
        assignment in proptest::collection::vec(0usize..6, 1..400),
    ) {
        let (_, _, whole) = round0(1);
        let reference = merge(None, &whole).unwrap();
        let file = &whole[0].file;
        let mut parts: Vec<NamedShard> = (0..pieces)
            .map(|p| NamedShard {
                name: format!("piece-{p}"),
                file: ShardFile { counts: Vec::new(), ..file.clone() },
            })
            .collect();
        let mut k = 0;
        for c in &file.counts {
            for b in &c.batches {
                let p = assignment[k % assignment.len()] % pieces;
                k += 1;
                let counts = &mut parts[p].file.counts;
                match counts.iter_mut().find(|x| (x.detector, x.point) == (c.detector, c.point)) {
                    Some(x) => x.batches.push(*b),
                    None => counts.push(PointCounts { detector: c.detector, point: c.point, batches: vec![*b] }),
                }
            }
        }
        // Files in any order.
        parts.reverse();
        prop_assert_eq!(merge(None, &parts).unwrap(), reference);
    }
}
