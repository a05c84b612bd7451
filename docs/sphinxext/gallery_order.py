"""The order of the examples in the gallery: from the ideas to the tools.

sphinx-gallery sorts the examples of a gallery with a key it calls on each file name
(``within_subsection_order`` in ``conf.py``, given by this class's qualified name so
that the configuration stays picklable).
"""

# The introduction first (what the four atoms are), then measuring representations,
# planning a distillation, distilling (and what each method transfers), watching PID
# during training, and tuning.
ORDER = (
    "plot_gates.py",
    "plot_score_layers.py",
    "plot_plan_distillation.py",
    "plot_distill_digits_cnn.py",
    "plot_methods_pid.py",
    "plot_pid_during_training.py",
    "plot_distill_tabular.py",
    "plot_grid_search_pid_weight.py",
)


class ExampleOrder:
    """Sort key of the gallery's examples: ``ORDER``, then any other file by name.

    Parameters
    ----------
    src_dir : str
        The gallery's source folder (sphinx-gallery passes it; unused).
    """

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        """The key of ``filename``: its place in ``ORDER`` (unlisted files last)."""
        position = ORDER.index(filename) if filename in ORDER else len(ORDER)
        return position, filename

    def __repr__(self):
        return "ExampleOrder"
