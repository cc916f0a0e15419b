"""Constant-velocity Kalman filter on (xc, yc, aspect = w/h, h), batched over many tracks.

The noise model is JDE's (and DeepSORT's): standard deviations scale with the box height, position
weight 1/20, velocity weight 1/160. Every method takes stacks of states, so one call predicts,
updates or gates every track of a frame; a single track is a stack of one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: 0.95 quantile of the chi-square distribution with N degrees of freedom (N = 1..9), used to gate
#: squared Mahalanobis distances. Values from scipy.stats.chi2.ppf(0.95, N), as in DeepSORT/JDE.
CHI2INV95 = {
    1: 3.8415,
    2: 5.9915,
    3: 7.8147,
    4: 9.4877,
    5: 11.070,
    6: 12.592,
    7: 14.067,
    8: 15.507,
    9: 16.919,
}


class KalmanFilter:
    """State x = (xc, yc, a, h, vxc, vyc, va, vh); measurement z = (xc, yc, a, h).

    Shapes: ``mean`` (N, 8), ``covariance`` (N, 8, 8), measurements (N, 4) or (M, 4) for gating.
    All arithmetic is float64 (the covariances are badly scaled: 1e-5 on the aspect velocity against
    hundreds of pixels squared on the position) and nothing is mutated in place.
    """

    ndim = 4

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160, dt: float = 1.0):
        self.std_weight_position = float(std_weight_position)
        self.std_weight_velocity = float(std_weight_velocity)
        self.motion_mat = np.eye(2 * self.ndim)
        self.motion_mat[: self.ndim, self.ndim :] = dt * np.eye(self.ndim)
        self.update_mat = np.eye(self.ndim, 2 * self.ndim)

    # Noise standard deviations, one row per track; columns follow the state / measurement order.
    def _initial_std(self, h: np.ndarray) -> np.ndarray:
        p, v = self.std_weight_position, self.std_weight_velocity
        one = np.ones_like(h)
        return np.stack(
            [2 * p * h, 2 * p * h, 1e-2 * one, 2 * p * h, 10 * v * h, 10 * v * h, 1e-5 * one, 10 * v * h], axis=1
        )

    def _process_std(self, h: np.ndarray) -> np.ndarray:
        p, v = self.std_weight_position, self.std_weight_velocity
        one = np.ones_like(h)
        return np.stack([p * h, p * h, 1e-2 * one, p * h, v * h, v * h, 1e-5 * one, v * h], axis=1)

    def _measurement_std(self, h: np.ndarray) -> np.ndarray:
        p = self.std_weight_position
        one = np.ones_like(h)
        return np.stack([p * h, p * h, 1e-1 * one, p * h], axis=1)

    @staticmethod
    def _diag(std: np.ndarray) -> np.ndarray:
        n, d = std.shape
        out = np.zeros((n, d, d))
        out[:, np.arange(d), np.arange(d)] = std**2
        return out

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from (N, 4) xyah measurements: zero velocity, height-scaled uncertainty."""
        z = np.asarray(measurement, dtype=np.float64).reshape(-1, self.ndim)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        return mean, self._diag(self._initial_std(z[:, 3]))

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step for N tracks: x' = F x, P' = F P F^T + Q(h), Q from the pre-step height."""
        return self._linear(self.motion_mat, mean, covariance, self._process_std)

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project N states into measurement space: (H x, H P H^T + R(h))."""
        return self._linear(self.update_mat, mean, covariance, self._measurement_std)

    def _linear(self, m: np.ndarray, mean: np.ndarray, covariance: np.ndarray,
                noise_std: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(M x, M P M^T + diag(noise_std(h)**2)) for N states, the noise from each state's height h."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1, 2 * self.ndim)
        cov = np.asarray(covariance, dtype=np.float64).reshape(-1, 2 * self.ndim, 2 * self.ndim)
        return mean @ m.T, m @ cov @ m.T + self._diag(noise_std(mean[:, 3]))

    def update(
        self, mean: np.ndarray, covariance: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct N states with their N measurements (row i with row i)."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1, 2 * self.ndim)
        cov = np.asarray(covariance, dtype=np.float64).reshape(-1, 2 * self.ndim, 2 * self.ndim)
        z = np.asarray(measurement, dtype=np.float64).reshape(-1, self.ndim)
        proj_mean, proj_cov = self.project(mean, cov)
        # K = P H^T S^-1, solved rather than inverted (S is symmetric positive definite).
        pht = cov @ self.update_mat.T  # (N, 8, 4)
        gain = np.linalg.solve(proj_cov, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # (N, 8, 4)
        innovation = z - proj_mean
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        new_cov = cov - gain @ proj_cov @ gain.transpose(0, 2, 1)
        return new_mean, new_cov

    def gating_distance(
        self, mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray, only_position: bool = False
    ) -> np.ndarray:
        """(N, M) squared Mahalanobis distances between N projected states and M xyah measurements.

        With ``only_position`` only (xc, yc) count (2 dof instead of 4). Compare against
        ``CHI2INV95[4]`` (or ``[2]``) to gate.
        """
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, self.ndim)
        proj_mean, proj_cov = self.project(mean, covariance)
        if only_position:
            proj_mean, proj_cov, z = proj_mean[:, :2], proj_cov[:, :2, :2], z[:, :2]
        n, m = len(proj_mean), len(z)
        if n == 0 or m == 0:
            return np.zeros((n, m))
        d = z[None, :, :] - proj_mean[:, None, :]  # (N, M, k)
        # Cholesky + triangular solve as in DeepSORT; batched as a plain solve with the factor.
        chol = np.linalg.cholesky(proj_cov)  # (N, k, k)
        y = np.linalg.solve(chol, d.transpose(0, 2, 1))  # (N, k, M)
        return np.sum(y * y, axis=1)
