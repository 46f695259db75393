//! Our Isolation Forest behind linfa's traits, so it plugs into linfa `Dataset`s: `Fit` on
//! [`IsolationForestLinfa`] (params), `PredictInplace` on [`FittedIsolationForest`] for scores
//! (`Array1<f64>`, higher = more anomalous) and decisions (`Array1<bool>`).
//!
//! ```
//! use linfa::prelude::*;
//! use ndarray::array;
//! use workbench::detectors::linfa_iforest::IsolationForestLinfa;
//! let data = DatasetBase::from(array![[0.0, 0.1], [0.1, 0.0], [0.05, 0.05], [0.0, 0.0], [9.0, 9.0]]);
//! let model = IsolationForestLinfa::default().fit(&data).unwrap();
//! let scores: ndarray::Array1<f64> = model.predict(data.records());
//! assert!(scores[4] > scores[0]);
//! ```

use linfa::prelude::*;
use linfa::traits::PredictInplace;
use ndarray::{Array1, ArrayBase, Data, Ix2};
use runtime::models::iforest::{IForestError, IsolationForest, IsolationForestParams};

/// Errors of the linfa wrapper.
#[derive(Debug, thiserror::Error)]
pub enum LinfaIForestError {
    /// From the forest.
    #[error(transparent)]
    Forest(#[from] IForestError),
    /// From linfa.
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

/// Unfitted Isolation Forest for linfa.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IsolationForestLinfa(pub IsolationForestParams);

/// Fitted Isolation Forest for linfa.
#[derive(Debug, Clone)]
pub struct FittedIsolationForest(pub IsolationForest);

fn rows<D: Data<Elem = f64>>(x: &ArrayBase<D, Ix2>) -> Vec<f64> {
    x.rows().into_iter().flat_map(|r| r.to_vec()).collect()
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, LinfaIForestError> for IsolationForestLinfa {
    type Object = FittedIsolationForest;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<Self::Object, LinfaIForestError> {
        let x = dataset.records();
        Ok(FittedIsolationForest(self.0.fit(&rows(x), x.ncols())?))
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for FittedIsolationForest {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        assert_eq!(x.ncols(), self.0.n_features(), "feature count differs from the fit");
        let scores = self.0.score_samples(&rows(x));
        y.iter_mut().zip(scores).for_each(|(o, s)| *o = s);
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<bool>> for FittedIsolationForest {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<bool>) {
        assert_eq!(x.ncols(), self.0.n_features(), "feature count differs from the fit");
        let flags = self.0.predict(&rows(x));
        y.iter_mut().zip(flags).for_each(|(o, f)| *o = f);
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<bool> {
        Array1::from_elem(x.nrows(), false)
    }
}
