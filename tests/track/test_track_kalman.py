"""Kalman filter against hand-computed numbers and the textbook (filterpy-style) closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_builder.track import CHI2INV95, KalmanFilter


def test_initiate_and_predict_hand_computed():
    kf = KalmanFilter()
    mean, cov = kf.initiate(np.array([[50.0, 80.0, 0.5, 100.0]]))
    np.testing.assert_allclose(mean[0], [50, 80, 0.5, 100, 0, 0, 0, 0])
    # std = [2h/20, 2h/20, 1e-2, 2h/20, 10h/160, 10h/160, 1e-5, 10h/160] with h = 100
    np.testing.assert_allclose(np.diag(cov[0]), [100, 100, 1e-4, 100, 39.0625, 39.0625, 1e-10, 39.0625])
    mean2, cov2 = kf.predict(mean, cov)
    np.testing.assert_allclose(mean2, mean)  # zero velocity
    # P' = F P F^T + Q: x var = 100 + 39.0625 + (100/20)^2; x-vx cov = 39.0625; vx var += (100/160)^2
    assert cov2[0, 0, 0] == pytest.approx(164.0625)
    assert cov2[0, 0, 4] == pytest.approx(39.0625)
    assert cov2[0, 4, 4] == pytest.approx(39.0625 + 0.390625)
    assert cov2[0, 2, 2] == pytest.approx(1e-4 + 1e-4)  # aspect: 1e-2^2 initial + 1e-2^2 process


def test_update_scalar_hand_computed():
    kf = KalmanFilter()
    mean, cov = kf.predict(*kf.initiate(np.array([[50.0, 80.0, 0.5, 100.0]])))
    z = np.array([[60.0, 80.0, 0.5, 100.0]])
    new_mean, new_cov = kf.update(mean, cov, z)
    # x and vx decouple from the other coordinates: S = 164.0625 + (100/20)^2 = 189.0625
    s = 164.0625 + 25.0
    assert new_mean[0, 0] == pytest.approx(50 + 164.0625 / s * 10)
    assert new_mean[0, 4] == pytest.approx(39.0625 / s * 10)
    assert new_cov[0, 0, 0] == pytest.approx(164.0625 - 164.0625**2 / s)


def _textbook(mean, cov, z, kf):
    """filterpy's KalmanFilter.predict/update written out with explicit inverses, for one track."""
    f, h = kf.motion_mat, kf.update_mat
    hgt = mean[3]
    p, v = kf.std_weight_position, kf.std_weight_velocity
    q = np.diag(np.square([p * hgt, p * hgt, 1e-2, p * hgt, v * hgt, v * hgt, 1e-5, v * hgt]))
    x = f @ mean
    pp = f @ cov @ f.T + q
    r = np.diag(np.square([p * x[3], p * x[3], 1e-1, p * x[3]]))
    s = h @ pp @ h.T + r
    k = pp @ h.T @ np.linalg.inv(s)
    x_new = x + k @ (z - h @ x)
    p_new = (np.eye(8) - k @ h) @ pp
    return x, pp, x_new, p_new


def test_batched_matches_textbook_closed_form():
    rng = np.random.default_rng(0)
    kf = KalmanFilter()
    n = 7
    z0 = np.column_stack(
        [rng.uniform(0, 500, n), rng.uniform(0, 500, n), rng.uniform(0.3, 0.6, n), rng.uniform(40, 300, n)]
    )
    mean, cov = kf.initiate(z0)
    mean[:, 4:] = rng.normal(0, 3, (n, 4)) * [1, 1, 0.001, 1]
    pm, pc = kf.predict(mean, cov)
    z = z0 + rng.normal(0, 2, (n, 4)) * [1, 1, 0.01, 1]
    um, uc = kf.update(pm, pc, z)
    for i in range(n):
        x, pp, x_new, p_new = _textbook(mean[i], cov[i], z[i], kf)
        np.testing.assert_allclose(pm[i], x, rtol=1e-10)
        np.testing.assert_allclose(pc[i], pp, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(um[i], x_new, rtol=1e-8)
        np.testing.assert_allclose(uc[i], p_new, rtol=1e-6, atol=1e-9)


def test_gating_distance_is_squared_mahalanobis():
    kf = KalmanFilter()
    mean, cov = kf.predict(*kf.initiate(np.array([[100, 100, 0.4, 120], [300, 200, 0.5, 80.0]])))
    meas = np.array([[100, 100, 0.4, 120], [110, 95, 0.42, 118], [300, 200, 0.5, 80], [400, 50, 0.3, 60.0]])
    d = kf.gating_distance(mean, cov, meas)
    assert d.shape == (2, 4)
    pm, pc = kf.project(mean, cov)
    for i in range(2):
        for j in range(4):
            diff = meas[j] - pm[i]
            assert d[i, j] == pytest.approx(diff @ np.linalg.inv(pc[i]) @ diff, rel=1e-8)
    assert d[0, 0] == pytest.approx(0) and d[1, 2] == pytest.approx(0)
    assert d[0, 3] > CHI2INV95[4] and d[1, 0] > CHI2INV95[4]
    dp = kf.gating_distance(mean, cov, meas, only_position=True)
    assert np.all(dp <= d + 1e-9)


def test_chi2_table_matches_scipy():
    from scipy.stats import chi2

    for dof, value in CHI2INV95.items():
        assert value == pytest.approx(chi2.ppf(0.95, dof), abs=1e-3)
