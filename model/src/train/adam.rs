//! The Adam optimizer (Kingma & Ba, 2015) with bias correction, as used by the paper's training
//! protocol: β1 = 0.9, β2 = 0.999, ε = 1e-8. Moments are kept in f64 so that the update of an
//! f32 parameter vector is the same on every machine and thread count.

/// Adam state for one parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: u64,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    /// Adam with the default hyper-parameters for `len` parameters.
    pub fn new(len: usize) -> Self {
        Self::with_hyper(len, 0.9, 0.999, 1e-8)
    }

    /// Adam with explicit β1, β2 and ε.
    pub fn with_hyper(len: usize, beta1: f64, beta2: f64, eps: f64) -> Self {
        Self {
            beta1,
            beta2,
            eps,
            step: 0,
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update with learning rate `lr`:
    /// m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², p ← p − lr · m̂ / (√v̂ + ε),
    /// with m̂ = m/(1−β1ᵗ) and v̂ = v/(1−β2ᵗ).
    pub fn update(&mut self, params: &mut [f32], grad: &[f32], lr: f64) {
        assert_eq!(params.len(), self.m.len(), "Adam: parameter count changed");
        assert_eq!(grad.len(), self.m.len(), "Adam: gradient length differs");
        self.step += 1;
        let t = self.step as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            let g = g as f64;
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            let m_hat = *m / c1;
            let v_hat = *v / c2;
            *p = (*p as f64 - lr * m_hat / (v_hat.sqrt() + self.eps)) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_two_steps_match_hand_computation() {
        // Step 1: m = 0.1g, v = 0.001g², m̂ = g, v̂ = g² ⇒ Δ = −lr·g/(|g|+ε) ≈ −lr·sign(g).
        let mut adam = Adam::new(2);
        let mut p = [1.0f32, -2.0];
        adam.update(&mut p, &[0.5, -4.0], 0.01);
        assert!((p[0] - (1.0 - 0.01 * 0.5 / (0.5 + 1e-8)) as f32).abs() < 1e-7);
        assert!((p[1] - (-2.0 + 0.01 * 4.0 / (4.0 + 1e-8)) as f32).abs() < 1e-7);
        // Step 2 with g = 1.5 on the first parameter:
        // m = 0.9·0.05 + 0.1·1.5 = 0.195, m̂ = 0.195/0.19 = 1.026315…;
        // v = 0.999·0.00025 + 0.001·2.25 = 0.00249975, v̂ = 0.00249975/0.001999 = 1.250500…
        let before = p[0] as f64;
        adam.update(&mut p, &[1.5, 0.0], 0.01);
        let m_hat = 0.195 / 0.19;
        let v_hat = 0.002_499_75 / (1.0 - 0.999f64 * 0.999);
        let want = before - 0.01 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!(
            (p[0] as f64 - want).abs() < 1e-6,
            "got {}, want {want}",
            p[0]
        );
        assert_eq!(adam.steps(), 2);
    }

    #[test]
    fn minimizes_a_quadratic() {
        // f(p) = Σ a_i (p_i − c_i)², gradient 2 a_i (p_i − c_i).
        let a = [1.0f32, 10.0, 0.1];
        let c = [3.0f32, -1.0, 0.5];
        let mut p = [0.0f32; 3];
        let mut adam = Adam::new(3);
        let loss = |p: &[f32]| -> f32 { (0..3).map(|i| a[i] * (p[i] - c[i]).powi(2)).sum() };
        let start = loss(&p);
        for step in 0..3000 {
            let g: Vec<f32> = (0..3).map(|i| 2.0 * a[i] * (p[i] - c[i])).collect();
            let lr = if step < 2000 { 0.05 } else { 0.005 };
            adam.update(&mut p, &g, lr);
        }
        let end = loss(&p);
        assert!(end < 1e-4 * start, "loss {start} → {end}, p = {p:?}");
        for i in 0..3 {
            assert!(
                (p[i] - c[i]).abs() < 0.02,
                "p[{i}] = {} want {}",
                p[i],
                c[i]
            );
        }
    }
}
