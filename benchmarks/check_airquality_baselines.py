"""Non-recurrent reference levels for the benzene study (``cellvision benzene``).

Builds exactly the study's default data and folds
(:func:`cellvision.recipes.forecasting.build_windows` and ``month_folds``) and fits
closed-form ridge regressions on the flattened input windows of each fold's training
windows (all of them, like the study's default; with a validation slice, fit and
validation together: ridge has nothing to stop early), then reports the test MSE in
(ug/m3)^2 per fold next to persistence:

* ``ridge``: the flattened window as it is (measurements, calendar columns, lagged copies);
* ``ridge+hour``: plus one-hot terms for the target's hour of day and their products with the
  last benzene reading and with the weekend flag, the hour-specific terms a linear model
  needs to express that the rush-hour jumps differ from hour to hour.

These are the yardsticks for the recurrent models: the study's LSTM ensembles reach
about 8.3 on the same folds. Measured once (the bundled data, default window 48):
persistence 17.82, ridge 9.27, ridge+hour 8.65. Takes a few seconds.

Usage::

    python benchmarks/check_airquality_baselines.py
    python benchmarks/check_airquality_baselines.py --window 24 --alpha 100
"""

from __future__ import annotations

import argparse

import numpy as np
import numpy.typing as npt

from cellvision.data.features import calendar_features
from cellvision.metrics import persistence_mse
from cellvision.recipes.forecasting import ForecastRecipe, build_windows, month_folds, targets_of


def ridge_predict(
    x_train: npt.NDArray[np.float64],
    y_train: npt.NDArray[np.float64],
    x_test: npt.NDArray[np.float64],
    alpha: float,
) -> npt.NDArray[np.float64]:
    """Ridge regression on standardised features with an unpenalised intercept."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9
    a, b = (x_train - mean) / std, (x_test - mean) / std
    gram = a.T @ a + alpha * np.eye(a.shape[1])
    coef = np.linalg.solve(gram, a.T @ (y_train - y_train.mean()))
    return np.asarray(b @ coef + y_train.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--window", type=int, default=48)
    parser.add_argument("--alpha", type=float, default=30.0, help="ridge penalty")
    cli = parser.parse_args()

    recipe = ForecastRecipe(window=cli.window)
    ds = build_windows(recipe)
    folds = month_folds(recipe, ds)
    series = ds.series.double().numpy()
    names = list(ds.columns or ())
    benzene = names.index(recipe.target)
    weekend = names.index("weekend")
    # the library's one-hot hour code (the columns after the four cyclic ones)
    if ds.timestamps is None:
        raise RuntimeError("build_windows must keep the timestamps")
    hour_codes = calendar_features(ds.timestamps, hour_one_hot=True)[:, 4:]

    def features(indices: npt.NDArray[np.int64], hour_terms: bool) -> npt.NDArray[np.float64]:
        ends = ds.end_rows[indices]
        rows = ends[:, None] - np.arange(ds.window)[None, :]
        parts = [series[rows][:, :, list(ds.input_columns)].reshape(len(indices), -1)]
        if hour_terms:
            one_hot = hour_codes[ends + 1].astype(np.float64)
            parts += [
                one_hot,
                one_hot * series[ends, benzene][:, None],
                one_hot * series[ends, weekend][:, None],
            ]
        return np.concatenate(parts, axis=1)

    table: dict[str, list[float]] = {"persistence": [], "ridge": [], "ridge+hour": []}
    for fold in folds:
        train_idx, test_idx = np.concatenate([fold.fit, fold.val]), fold.test
        y_train, y_test = targets_of(ds, train_idx), targets_of(ds, test_idx)
        table["persistence"].append(persistence_mse(ds.targets[:, 0], ds.end_rows[test_idx]))
        for name, hour_terms in (("ridge", False), ("ridge+hour", True)):
            pred = ridge_predict(
                features(train_idx, hour_terms), y_train, features(test_idx, hour_terms), cli.alpha
            )
            table[name].append(float(np.mean((pred - y_test) ** 2)))

    print(f"test MSE in (ug/m3)^2, window {cli.window}, ridge alpha {cli.alpha}")
    print(f"{'fold':<10}" + "".join(f"{name:>13}" for name in table))
    for i, fold in enumerate(folds):
        print(f"{fold.name:<10}" + "".join(f"{v[i]:>13.2f}" for v in table.values()))
    means = {name: float(np.mean(v)) for name, v in table.items()}
    print(f"{'mean':<10}" + "".join(f"{m:>13.2f}" for m in means.values()))
    ratio = "".join(f"{m / means['persistence']:>13.3f}" for m in means.values())
    print(f"{'/persist.':<10}" + ratio)


if __name__ == "__main__":
    main()
