//! The local view's standings, positions and ETAs, tick by tick.

use super::*;
use crate::config::QueueMode;

fn room() -> Room {
    Room::new(RoomSettings {
        grace_secs: 30,
        ..RoomSettings::new(1, QueueMode::Fifo, 60, 10, 60)
    })
}

#[test]
fn the_eta_follows_the_pace_admissions_are_made_at() {
    let r = room();
    let tick = |at_ms: i64, admitted_total: u64| Tick {
        at_ms,
        through: admitted_total,
        seq: 1_000,
        waiting: 500,
        admitted_total,
        rate: 60,
        ..Tick::default()
    };
    // The first ten seconds: the pace is not known, the rate counts.
    r.apply(tick(0, 0), vec![]);
    r.apply(tick(5_000, 1), vec![]);
    match r.standing(62) {
        Standing::Waiting { eta_secs, .. } => assert_eq!(eta_secs, 60, "60 ahead at one a second"),
        other => panic!("{other:?}"),
    }
    // One admission every 4 s (the active cap is full): 15 a minute.
    r.apply(tick(20_000, 5), vec![]);
    assert_eq!(r.progress().admitting_per_minute, 15);
    match r.standing(65) {
        Standing::Waiting {
            eta_secs,
            admit_per_minute,
            ..
        } => {
            assert_eq!(admit_per_minute, 60);
            assert_eq!(eta_secs, 59 * 4, "59 ahead at one every 4 s");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pollers_are_told_to_ask_again_before_a_turn_could_lapse() {
    let r = room();
    r.apply(
        Tick {
            at_ms: 0,
            through: 0,
            seq: 1_000,
            waiting: 1_000,
            rate: 60,
            ..Tick::default()
        },
        vec![],
    );
    let told = |ticket| match r.standing(ticket) {
        Standing::Waiting { poll_after_secs, .. } => poll_after_secs,
        other => panic!("{other:?}"),
    };
    // At one a second: a quarter of the ETA near the front...
    assert_eq!(told(9), 2, "8 ahead: ETA 8 s");
    assert_eq!(told(2), 1, "never sooner than a second");
    // ...and never more than a third of the grace (30 s) or the claim
    // window (60 s), however long the wait.
    assert_eq!(told(1_000), 10);
    let mut patient = (*r.settings()).clone();
    patient.grace_secs = 600;
    patient.session_secs = 300;
    assert_eq!(poll_after(10_000, &patient), 100, "a third of the 300 s claim window");
    assert_eq!(poll_after(200, &patient), 50);
}

#[test]
fn merging_keeps_order_and_drops_duplicates() {
    assert_eq!(merged(&[1, 4, 9], &[2, 4, 10, 11]), vec![1, 2, 4, 9, 10, 11]);
    assert_eq!(merged(&[], &[3]), vec![3]);
    assert_eq!(merged(&[3], &[]), vec![3]);
}

#[test]
fn positions_come_from_the_tick_and_the_removed_list() {
    let r = room();
    r.apply(
        Tick {
            through: 10,
            seq: 20,
            waiting: 8,
            ..Tick::default()
        },
        vec![12, 15, 3],
    );
    assert_eq!(r.standing(5), Standing::Admitted);
    assert_eq!(r.standing(3), Standing::Lost);
    assert_eq!(r.standing(12), Standing::Lost);
    // 11 is next; 12 is gone, so 13 is second and 16 is fourth.
    assert!(matches!(r.standing(11), Standing::Waiting { position: 1, .. }));
    assert!(matches!(r.standing(13), Standing::Waiting { position: 2, .. }));
    match r.standing(16) {
        Standing::Waiting {
            position,
            ahead,
            eta_secs,
            ..
        } => {
            assert_eq!((position, ahead), (4, 3));
            assert_eq!(eta_secs, 3, "3 ahead at one a second");
        }
        other => panic!("{other:?}"),
    }
    // A later tick's losses merge with the earlier ones (12 again: once).
    r.apply(
        Tick {
            through: 10,
            seq: 20,
            waiting: 7,
            ..Tick::default()
        },
        vec![14, 12],
    );
    assert_eq!(r.standing(14), Standing::Lost);
    assert!(matches!(r.standing(16), Standing::Waiting { position: 3, .. }));
    assert!(matches!(r.standing(13), Standing::Waiting { position: 2, .. }));
}
