//! Packet loss decisions: none, independent (Bernoulli), or bursty (Gilbert–Elliott: a good
//! and a bad state, each with its own loss probability, switching per packet).
use crate::rng::Rng;

/// Which packets a link loses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossModel {
    /// Every packet arrives.
    None,
    /// Each packet is lost with probability `p`, independently.
    Random { p: f64 },
    /// Gilbert–Elliott: in the good state a packet is lost with `loss_good`, in the bad one
    /// with `loss_bad`; after each packet good→bad with `p_gb`, bad→good with `p_bg`.
    GilbertElliott { p_gb: f64, p_bg: f64, loss_good: f64, loss_bad: f64 },
}

impl LossModel {
    /// The model for an average loss of `pct` % in bursts of `burst` packets on average:
    /// independent for `burst` ≤ 1, else a simple Gilbert model (the bad state loses
    /// everything, the good one nothing) with that mean burst and stationary loss.
    pub fn from_pct(pct: f64, burst: f64) -> Self {
        let p = (pct / 100.0).clamp(0.0, 1.0);
        if p <= 0.0 {
            Self::None
        } else if burst <= 1.0 || p >= 1.0 {
            Self::Random { p }
        } else {
            let p_bg = 1.0 / burst;
            // Stationary share of the bad state: p_gb / (p_gb + p_bg) = p.
            let p_gb = (p * p_bg / (1.0 - p)).min(1.0);
            Self::GilbertElliott { p_gb, p_bg, loss_good: 0.0, loss_bad: 1.0 }
        }
    }
}

/// A loss model with its state (the Gilbert–Elliott state).
#[derive(Debug, Clone)]
pub struct Loss {
    model: LossModel,
    bad: bool,
}

impl Loss {
    /// Starts in the good state.
    pub fn new(model: LossModel) -> Self {
        Self { model, bad: false }
    }

    /// The model in use.
    pub fn model(&self) -> LossModel {
        self.model
    }

    /// Whether the next packet is lost.
    pub fn lose(&mut self, rng: &mut Rng) -> bool {
        match self.model {
            LossModel::None => false,
            LossModel::Random { p } => rng.unit() < p,
            LossModel::GilbertElliott { p_gb, p_bg, loss_good, loss_bad } => {
                let lost = rng.unit() < if self.bad { loss_bad } else { loss_good };
                let flip = rng.unit() < if self.bad { p_bg } else { p_gb };
                if flip {
                    self.bad = !self.bad;
                }
                lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (share lost, mean length of runs of losses) over `n` packets.
    fn run(model: LossModel, n: usize) -> (f64, f64) {
        let mut loss = Loss::new(model);
        let mut rng = Rng::new(42);
        let (mut lost, mut runs, mut prev) = (0usize, 0usize, false);
        for _ in 0..n {
            let l = loss.lose(&mut rng);
            lost += l as usize;
            if l && !prev {
                runs += 1;
            }
            prev = l;
        }
        (lost as f64 / n as f64, if runs == 0 { 0.0 } else { lost as f64 / runs as f64 })
    }

    #[test]
    fn no_loss_loses_nothing() {
        assert_eq!(LossModel::from_pct(0.0, 3.0), LossModel::None);
        assert_eq!(run(LossModel::None, 10_000).0, 0.0);
    }

    #[test]
    fn random_loss_matches_its_rate_in_runs_of_about_one() {
        let (share, burst) = run(LossModel::from_pct(2.0, 1.0), 200_000);
        // Binomial: sd = sqrt(0.02 * 0.98 / 200000) ≈ 0.0003; 5 sd.
        assert!((share - 0.02).abs() < 0.0016, "lost {share}");
        assert!(burst < 1.1, "mean burst {burst}");
    }

    #[test]
    fn bursty_loss_keeps_the_average_and_loses_in_bursts() {
        let model = LossModel::from_pct(3.0, 4.0);
        let (share, burst) = run(model, 400_000);
        assert!((share - 0.03).abs() < 0.004, "lost {share}");
        assert!((burst - 4.0).abs() < 0.4, "mean burst {burst}");
    }

    #[test]
    fn total_loss_loses_everything() {
        assert_eq!(run(LossModel::from_pct(100.0, 5.0), 1000).0, 1.0);
    }
}
