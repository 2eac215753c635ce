"""The floor of the study's residual of the mean P(k) (``mean_pk_mean_abs_residual_k*`` of
results/study/learning_curve_summary.csv): exact samples of the held-out fields (their
``hi_redraw`` draws, docs/convergence/hi_redraw.py), as many per field as the study has seeds,
scored as the study scores a snapshot: the mean over the volumes of P_gen/P_target, then
mean |ratio - 1| over the bins k <= 1, 5, 10 h/Mpc. Draws 1, 2, ... make disjoint sets (set j:
draws per*j+1 .. per*j+per of every field). It made docs/convergence/mean_pk_floor.csv
("The study on three fields, calibrated" in docs/convergence.md):

    python docs/convergence/mean_pk_floor.py results docs/convergence/mean_pk_floor.csv \\
        --test CV_2 CV_5 CV_6 --per-field 2 --draws 16
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from lodi_core.analysis.metrics import K_LIMITS, mean_abs_residual, power_residual  # noqa: E402
from lodi_core.io import read_grids, write_csv  # noqa: E402


def main(args) -> None:
    results = Path(args.results)
    ratios = {}
    for sim in args.test:
        target, attrs = read_grids(results / "grids" / f"{sim}.h5", ("tb",))
        draws = [results / "generated" / sim / f"hi_redraw_seed{i}.h5" for i in range(1, args.draws + 1)]
        tables = [
            power_residual(read_grids(d, ("tb",))[0]["tb"], target["tb"], float(attrs["box_size"])) for d in draws
        ]
        ratios[sim] = [t.set_index("k")["residual"] + 1.0 for t in tables]
    rows = []
    for j in range(args.draws // args.per_field):
        picked = [ratios[sim][args.per_field * j + i] for sim in args.test for i in range(args.per_field)]
        mean = pd.concat(picked, axis=1).mean(axis=1)
        table = pd.DataFrame({"k": mean.index, "residual": mean.to_numpy() - 1.0})
        row = {"set": j, "volumes": len(picked)}
        rows.append(row | {f"mean_pk_mean_abs_residual_k{k:g}": mean_abs_residual(table, k) for k in K_LIMITS})
    table = pd.DataFrame(rows)
    write_csv(table.round(4), args.csv)
    print(table.round(3).to_string(index=False))
    print(table.drop(columns=["set", "volumes"]).agg(["mean", "min", "max"]).round(3).to_string())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="grids and the test simulations' hi_redraw draws")
    parser.add_argument("csv")
    parser.add_argument("--test", nargs="+", default=["CV_2", "CV_5", "CV_6"])
    parser.add_argument("--per-field", type=int, default=2, help="volumes per field (the study's seeds)")
    parser.add_argument("--draws", type=int, default=16, help="hi_redraw draws per field")
    main(parser.parse_args())
