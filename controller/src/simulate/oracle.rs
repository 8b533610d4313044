//! The clairvoyant oracle: per epoch (one sample), the fractional knapsack by true IOPS per
//! GiB of footprint, with zero migration cost.
//!
//! Value = a volume's true intensity in that sample, weight = its footprint, capacity = the
//! fast tier. The greedy fill by density is the optimum of the LP relaxation, so no placement
//! that fits the capacity serves more IOPS from the fast tier in that sample: summed over the
//! run it is an upper bound for any policy, including ones that move instantly.

/// Volume indices by decreasing density `values[i] / weights[i]`, ties by index.
#[cfg(test)]
pub fn by_density(values: &[f64], weights: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    sort_by_density(&mut order, values, weights);
    order
}

/// Re-sorts `order` (a permutation of the indices) by decreasing density, ties by index.
pub fn sort_by_density(order: &mut [usize], values: &[f64], weights: &[f64]) {
    let density = |i: usize| values[i] / weights[i].max(f64::MIN_POSITIVE);
    order.sort_by(|&a, &b| density(b).total_cmp(&density(a)).then(a.cmp(&b)));
}

/// The oracle's answer for one epoch at one capacity.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    /// Value served from the fast tier, the boundary item counted fractionally.
    pub served: f64,
    /// Indices placed entirely in the fast tier (the "oracle top set").
    pub whole: Vec<usize>,
    /// Density of the item that did not fit whole (the capacity's LP dual price), 0 when
    /// everything fits.
    pub price: f64,
}

/// Greedy fractional knapsack over `order` (densest first) with `capacity`.
pub fn fill(order: &[usize], values: &[f64], weights: &[f64], capacity: f64) -> Fill {
    let mut left = capacity;
    let mut out = Fill {
        served: 0.0,
        whole: Vec::new(),
        price: 0.0,
    };
    for &i in order {
        if left <= 0.0 {
            break;
        }
        if weights[i] <= left {
            left -= weights[i];
            out.served += values[i];
            out.whole.push(i);
        } else {
            out.served += values[i] * left / weights[i];
            out.price = values[i] / weights[i].max(f64::MIN_POSITIVE);
            left = 0.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_knapsack_on_a_hand_computed_instance() {
        // Densities: 10, 3, 1, 5 IOPS per GiB.
        let values = [100.0, 60.0, 30.0, 25.0];
        let weights = [10.0, 20.0, 30.0, 5.0];
        let order = by_density(&values, &weights);
        assert_eq!(order, vec![0, 3, 1, 2]);
        // Capacity 25: item 0 (10) and item 3 (5) whole, then 10 of item 1's 20 GiB.
        let f = fill(&order, &values, &weights, 25.0);
        assert_eq!(f.whole, vec![0, 3]);
        assert!(
            (f.served - (100.0 + 25.0 + 30.0)).abs() < 1e-12,
            "{}",
            f.served
        );
        // Everything fits: all served.
        let f = fill(&order, &values, &weights, 1000.0);
        assert!((f.served - 215.0).abs() < 1e-12);
        assert_eq!(f.whole.len(), 4);
        // Nothing fits.
        let f = fill(&order, &values, &weights, 0.0);
        assert_eq!(f.served, 0.0);
        assert!(f.whole.is_empty());
    }

    #[test]
    fn the_oracle_bounds_every_feasible_placement() {
        // All 2^5 subsets that fit 40 GiB serve no more than the fractional fill.
        let values = [50.0, 40.0, 35.0, 20.0, 5.0];
        let weights = [20.0, 10.0, 25.0, 5.0, 15.0];
        let bound = fill(&by_density(&values, &weights), &values, &weights, 40.0).served;
        for mask in 0u32..32 {
            let pick =
                |f: &[f64]| -> f64 { (0..5).filter(|i| mask >> i & 1 == 1).map(|i| f[i]).sum() };
            if pick(&weights) <= 40.0 {
                assert!(pick(&values) <= bound + 1e-9, "subset {mask:05b}");
            }
        }
    }
}
