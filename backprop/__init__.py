"""backprop: multi-layer perceptrons trained by backpropagation, in NumPy.

Quick start::

    import backprop
    spec = {"network": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 200}}
    model = backprop.train(spec, X, y)        # y: numbers (regression) or labels
    model.predict(X_new); model.save("model.npz"); backprop.Model.load("model.npz")
"""

from .activations import ACTIVATIONS
from .errors import DivergenceError, GradientCheckError, SpecError
from .evaluation import evaluate
from .findings import findings
from .gradcheck import gradient_check
from .initializers import INITIALIZERS
from .losses import LOSSES
from .memory import estimate_training_memory, largest_batch
from .model import Model, infer_task, train
from .network import Network
from .optimizers import OPTIMIZERS
from .preprocessing import LabelEncoder, Standardizer
from .schedules import SCHEDULES
from .spec import check_continuable, count_parameters, resolve_spec
from .trace import trace
from .training import Progress, Trainer

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "DivergenceError",
    "GradientCheckError",
    "LabelEncoder",
    "Model",
    "Network",
    "Progress",
    "SpecError",
    "Standardizer",
    "Trainer",
    "check_continuable",
    "count_parameters",
    "estimate_training_memory",
    "evaluate",
    "findings",
    "gradient_check",
    "infer_task",
    "largest_batch",
    "resolve_spec",
    "trace",
    "train",
]
