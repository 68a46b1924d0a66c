"""The figures a reader looks at (issue 16 item 10): each method its own look, legends clear of the
data, tick labels that do not collide, numbers written as numbers, and titles that agree with the curve."""

import itertools

import numpy as np
import pytest
from matplotlib.figure import Figure

import solvers
from neuralode_rnn.analysis import plots
from neuralode_rnn.analysis.solver_comparison import SolverComparison, SolverRun
from neuralode_rnn.analysis.stability import Contraction
from neuralode_rnn.plots import curves_png, plot_curves


@pytest.fixture
def figures(monkeypatch):
    """Every Figure saved while the test runs, drawn, so artists have their final positions."""
    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.canvas.draw()
        saved.append(self)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def comparison(methods, steps=(0.04, 0.02, 0.01, 0.005, 0.0025)):
    runs = []
    for i, method in enumerate(methods):
        kind = solvers.METHODS[method].kind
        for j, h in enumerate(steps):
            runs.append(SolverRun(method=method, kind=kind, order=1, step_size=h if kind == "fixed" else None,
                                  rtol=None if kind == "fixed" else 10.0 ** -(j + 3), nfe=64 * 2 ** j,
                                  seconds=1e-3 * 2 ** j, final_error=0.0,
                                  trajectory_error=10.0 ** -(i % 5) * h ** (1 + i % 4), accuracy=None,
                                  agreement=None))
    return SolverComparison(runs=runs, reference={}, orders={m: 1.0 + i % 4 for i, m in enumerate(methods)})


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


ENGINE_METHODS = list(solvers.FIXED_TABLEAUX + solvers.ADAPTIVE_TABLEAUX)  # what compare-solvers runs


def test_work_precision_gives_each_method_its_own_colour_and_marker_and_keeps_the_legend_off_the_data(
        tmp_path, figures):
    """Edge: heun2/fehlberg2, heun3/tsit5 and euler/dopri8 shared a colour, and the legend sat on points."""
    assert len(ENGINE_METHODS) >= 13
    plots.work_precision_plot(comparison(ENGINE_METHODS), tmp_path / "wp.png")
    (fig,) = figures
    for ax in fig.axes:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == set(ENGINE_METHODS)
        colours = {m: tuple(np.round(line.get_color(), 6)) if not isinstance(line.get_color(), str)
                   else line.get_color() for m, line in lines.items()}
        assert len(set(colours.values())) == len(lines), colours
        assert len({(colours[m], lines[m].get_marker()) for m in lines}) == len(lines)
    legend = fig.axes[1].get_legend()
    assert legend is not None
    for ax in fig.axes:
        assert not overlaps(legend.get_window_extent(), ax.get_window_extent())


def test_convergence_tick_labels_do_not_collide_and_read_as_step_sizes(tmp_path, figures):
    """Edge: log-axis minor labels ("3 x 10^-3", "4 x 10^-3") ran into each other."""
    fixed = sorted(solvers.FIXED_TABLEAUX)
    plots.convergence_plot(comparison(fixed), tmp_path / "conv.png")
    (fig,) = figures
    ax = fig.axes[0]
    labels = [t for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
              if t.get_visible() and t.get_text()]
    assert [t.get_text() for t in labels] == ["0.0025", "0.005", "0.01", "0.02", "0.04"]
    for a, b in itertools.combinations(labels, 2):
        assert not overlaps(a.get_window_extent(), b.get_window_extent()), (a, b)
    assert not overlaps(ax.get_legend().get_window_extent(), ax.get_window_extent())


def test_stability_regions_have_one_legend_for_all_panels_and_round_the_step(tmp_path, figures):
    """Edge: the legend was on the last panel only and read "0.0300001 * eig(A)"."""
    step = float(np.float32(0.03) * np.float32(3)) / 3  # 0.030000001..., as a float32 clock gives it
    eig = {"A": np.array([-0.1 + 0.2j, -0.1 - 0.2j]), "W": np.array([0.05, -0.3])}
    plots.stability_region_plot(eig, step, tmp_path / "st.png")
    (fig,) = figures
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["0.03 * eig(A)", "0.03 * eig(W)"]
    for ax in fig.axes:
        assert not overlaps(legend.get_window_extent(), ax.get_window_extent())


@pytest.mark.parametrize("growth", [0.1, -0.2])
def test_contraction_title_agrees_with_the_curve(tmp_path, figures, growth):
    """Edge: "measured rate -0.0972" over a growing curve; the rate is a contraction rate (r > 0:
    decays), which the title now says, with a fitted exp(-r t) drawn on the measured curve."""
    t = np.linspace(0.0, 10.0, 21)
    c = Contraction(times=t + 1.0, distance=np.exp(growth * t), predicted_rate=-1.5, measured_rate=-growth,
                    bound_holds=True)
    plots.contraction_plot(c, tmp_path / "c.png", title="run")
    (fig,) = figures
    ax = fig.axes[0]
    title = ax.get_title()
    assert title.startswith("run\n")
    assert f"measured r = {-growth:.3g} ({'grows' if growth > 0 else 'contracts'})" in title
    assert "guaranteed r >= -1.5" in title
    measured, fit = ax.get_lines()[:2]
    np.testing.assert_allclose(fit.get_ydata(), measured.get_ydata(), rtol=1e-12)


def test_curves_of_a_short_run_have_whole_epoch_ticks(tmp_path, figures):
    """Edge: two epochs gave ticks 1.0, 1.2, ..., 2.0."""
    rows = [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.1 / e, "train_accuracy": 0.1 * e,
             "test_accuracy": 0.09 * e} for e in (1, 2)]
    plot_curves(rows, tmp_path / "curves.png")
    (fig,) = figures
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [x for x in ax.get_xticks() if lo <= x <= hi]
        assert ticks == [1.0, 2.0], ticks


def test_curves_are_drawn_from_rows_and_written_by_the_run_directory(tmp_path):
    """Issue 17 item 6: plots.py draws from the rows it is given and imports nothing of training;
    the run directory replaces curves.png with those bytes itself (atomically)."""
    from neuralode_rnn.training import RunDir

    rows = [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.1 / e} for e in (1, 2, 3)]
    png = curves_png(rows, title="run")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rd = RunDir(tmp_path)
    rd.write_plot(png)
    assert rd.plot_path.read_bytes() == png
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary file left behind
