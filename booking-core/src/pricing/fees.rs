//! Fees and taxes on an order, as separate lines that always add up to
//! what is charged. Pure: `fee_settings.rs` reads and writes an event's
//! settings, `checkout/orders.rs` stores an order's lines beside it.
//!
//! Each ticket carries its price, its service and facility fees (per
//! ticket), and the tax on each: one tax line on the price and one on the
//! fees (when fees are taxable). The order may carry one fee of its own,
//! with its tax. Rounding is per line, half away from zero, to the
//! currency's minor unit (amounts are integers of it already):
//!
//! - exclusive rate r: tax = round(amount * r), added to the line;
//! - inclusive rate r: the line already contains its tax, which is
//!   amount - round(amount / (1 + r)); nothing is added.
//!
//! The total charged is the sum of the lines, so the receipt adds up to
//! the charge whatever the rounding. A refund of some tickets returns each
//! one's price and the tax on it, and its fees and their tax when the
//! event's fees are refundable; the order's own fee comes back (when
//! refundable) with the refund that takes its last tickets. So refunding
//! every ticket one by one returns exactly the total when fees are
//! refundable.

use serde::{Deserialize, Serialize};

/// What an operator sets per event (all amounts in the event currency's
/// minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeeSettings {
    pub service_fee_per_ticket_cents: i64,
    pub facility_fee_per_ticket_cents: i64,
    pub order_fee_cents: i64,
    /// In basis points: 2000 is 20%. 0 to 10000.
    pub tax_rate_bp: i32,
    /// Prices and fees already contain the tax (as in the EU), rather than
    /// having it added (as in most US states).
    pub tax_inclusive: bool,
    pub fees_taxable: bool,
    /// Whether a refund gives the fees back too.
    pub fees_refundable: bool,
}

impl FeeSettings {
    pub fn is_none(&self) -> bool {
        self.service_fee_per_ticket_cents == 0
            && self.facility_fee_per_ticket_cents == 0
            && self.order_fee_cents == 0
            && self.tax_rate_bp == 0
    }
}

/// One ticket's lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketCharge {
    pub seat_id: i64,
    pub price_cents: i64,
    pub service_fee_cents: i64,
    pub facility_fee_cents: i64,
    /// The tax on the price (added if exclusive, contained if inclusive).
    pub price_tax_cents: i64,
    /// The tax on the fees (0 when fees are not taxable).
    pub fee_tax_cents: i64,
}

/// An order's lines, stored with it (`orders.charge_lines`) and shown on
/// the order, the receipt and the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Charges {
    pub currency: String,
    pub tickets: Vec<TicketCharge>,
    pub order_fee_cents: i64,
    pub order_fee_tax_cents: i64,
    pub tax_rate_bp: i32,
    pub tax_inclusive: bool,
    pub fees_refundable: bool,
    /// Every line's sum: what is charged.
    pub total_cents: i64,
}

/// Half away from zero, of `num / den` (den > 0).
fn round_div(num: i128, den: i128) -> i128 {
    if num >= 0 {
        (2 * num + den) / (2 * den)
    } else {
        -((-2 * num + den) / (2 * den))
    }
}

/// The tax on one line of `amount` at `bp` basis points.
pub fn tax(amount: i64, bp: i32, inclusive: bool) -> i64 {
    let (amount, bp) = (i128::from(amount), i128::from(bp));
    let t = if inclusive {
        amount - round_div(amount * 10_000, 10_000 + bp)
    } else {
        round_div(amount * bp, 10_000)
    };
    // |t| <= |amount| for bp <= 10000, so it fits.
    t as i64
}

impl Charges {
    /// The lines of an order of `seats` (seat id, price) in `currency`.
    pub fn compute(currency: &str, seats: &[(i64, i64)], s: &FeeSettings) -> Charges {
        let tickets: Vec<TicketCharge> = seats
            .iter()
            .map(|&(seat_id, price)| {
                let fees = s.service_fee_per_ticket_cents + s.facility_fee_per_ticket_cents;
                TicketCharge {
                    seat_id,
                    price_cents: price,
                    service_fee_cents: s.service_fee_per_ticket_cents,
                    facility_fee_cents: s.facility_fee_per_ticket_cents,
                    price_tax_cents: tax(price, s.tax_rate_bp, s.tax_inclusive),
                    fee_tax_cents: if s.fees_taxable {
                        tax(fees, s.tax_rate_bp, s.tax_inclusive)
                    } else {
                        0
                    },
                }
            })
            .collect();
        let order_fee_tax_cents = if s.fees_taxable {
            tax(s.order_fee_cents, s.tax_rate_bp, s.tax_inclusive)
        } else {
            0
        };
        let mut c = Charges {
            currency: currency.to_owned(),
            tickets,
            order_fee_cents: s.order_fee_cents,
            order_fee_tax_cents,
            tax_rate_bp: s.tax_rate_bp,
            tax_inclusive: s.tax_inclusive,
            fees_refundable: s.fees_refundable,
            total_cents: 0,
        };
        c.total_cents = c.lines_total();
        c
    }

    /// Taxes are added only when exclusive.
    fn added(&self, tax: i64) -> i64 {
        if self.tax_inclusive { 0 } else { tax }
    }

    fn ticket_price_part(&self, t: &TicketCharge) -> i64 {
        t.price_cents + self.added(t.price_tax_cents)
    }

    fn ticket_fee_part(&self, t: &TicketCharge) -> i64 {
        t.service_fee_cents + t.facility_fee_cents + self.added(t.fee_tax_cents)
    }

    /// The sum of every line.
    pub fn lines_total(&self) -> i64 {
        let tickets: i64 = self
            .tickets
            .iter()
            .map(|t| self.ticket_price_part(t) + self.ticket_fee_part(t))
            .sum();
        tickets + self.order_fee_cents + self.added(self.order_fee_tax_cents)
    }

    /// What a refund of these seats gives back; `last` when it takes the
    /// order's last tickets still held.
    pub fn refund_for(&self, seats: &[i64], last: bool) -> i64 {
        let tickets: i64 = self
            .tickets
            .iter()
            .filter(|t| seats.contains(&t.seat_id))
            .map(|t| {
                self.ticket_price_part(t)
                    + if self.fees_refundable {
                        self.ticket_fee_part(t)
                    } else {
                        0
                    }
            })
            .sum();
        let order_fee = if last && self.fees_refundable {
            self.order_fee_cents + self.added(self.order_fee_tax_cents)
        } else {
            0
        };
        tickets + order_fee
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounding_is_per_line_half_away_from_zero() {
        // 20% of 1.25 = 0.25; of 0.05 = 0.01; inclusive 20% in 1.20 = 0.20.
        assert_eq!(tax(125, 2000, false), 25);
        assert_eq!(tax(5, 1000, false), 1);
        assert_eq!(tax(4, 1000, false), 0);
        assert_eq!(tax(120, 2000, true), 20);
        assert_eq!(tax(1000, 0, true), 0);
        assert_eq!(tax(1000, 10_000, false), 1000);
        assert_eq!(tax(1000, 10_000, true), 500);
        let c = Charges::compute(
            "jpy",
            &[(1, 5000), (2, 5000)],
            &FeeSettings {
                service_fee_per_ticket_cents: 500,
                facility_fee_per_ticket_cents: 200,
                order_fee_cents: 300,
                tax_rate_bp: 1000,
                tax_inclusive: false,
                fees_taxable: true,
                fees_refundable: false,
            },
        );
        // Per ticket 5000 + 500 tax + 700 fees + 70 tax; order fee 300 + 30.
        assert_eq!(c.total_cents, 2 * (5000 + 500 + 700 + 70) + 330);
        assert_eq!(c.refund_for(&[1], false), 5500);
    }

    fn settings() -> impl Strategy<Value = FeeSettings> {
        (
            0..100_000i64,
            0..100_000i64,
            0..100_000i64,
            0..=10_000i32,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(s, f, o, bp, inc, taxable, refundable)| FeeSettings {
                service_fee_per_ticket_cents: s,
                facility_fee_per_ticket_cents: f,
                order_fee_cents: o,
                tax_rate_bp: bp,
                tax_inclusive: inc,
                fees_taxable: taxable,
                fees_refundable: refundable,
            })
    }

    proptest! {
        /// The lines add up to the charge; taxes stay within their lines;
        /// refunds never give back more than was charged, and refunding
        /// every ticket one by one gives back all of it when fees are
        /// refundable, and all but the fees (and their tax) when not.
        #[test]
        fn the_lines_always_add_up(
            prices in proptest::collection::vec(0..10_000_000i64, 1..12),
            s in settings(),
        ) {
            let seats: Vec<(i64, i64)> = prices.iter().enumerate().map(|(i, p)| (i as i64, *p)).collect();
            let c = Charges::compute("usd", &seats, &s);
            prop_assert_eq!(c.total_cents, c.lines_total());
            prop_assert!(c.total_cents >= prices.iter().sum::<i64>());
            for t in &c.tickets {
                prop_assert!(t.price_tax_cents >= 0 && t.fee_tax_cents >= 0);
                if s.tax_inclusive {
                    prop_assert!(t.price_tax_cents <= t.price_cents);
                }
            }
            let mut back = 0;
            for (i, (seat, _)) in seats.iter().enumerate() {
                back += c.refund_for(&[*seat], i + 1 == seats.len());
            }
            let all: Vec<i64> = seats.iter().map(|(seat, _)| *seat).collect();
            prop_assert_eq!(back, c.refund_for(&all, true));
            prop_assert!(back <= c.total_cents);
            if s.fees_refundable {
                prop_assert_eq!(back, c.total_cents);
            } else {
                let fees: i64 = c.tickets.iter().map(|t| c.ticket_fee_part(t)).sum::<i64>()
                    + c.order_fee_cents + c.added(c.order_fee_tax_cents);
                prop_assert_eq!(back, c.total_cents - fees);
            }
        }
    }
}
