"""A Python client for backprop-service, over HTTP.

    from backprop_client import Client
    client = Client()                      # $BACKPROP_URL, $BACKPROP_API_KEY
    ds = client.datasets.create("iris.csv", target="species")
    job = client.jobs.create(dataset=ds, layers="16:tanh,3:softmax", optimizer="adam",
                             learning_rate=0.01, epochs=200, validation_split=0.2)
    job = job.wait()                       # a progress bar; JobFailed / JobCancelled
    model = job.model()
    model.predict(X).labels                # NumPy arrays
    local = model.download()               # a backprop.Model: the same numbers, locally

Every error answer raises an ``APIError`` subclass (``NotFound``, ``ValidationError`` with
``.errors``, ``RateLimited``, ...) with the problem's ``status``, ``title`` and ``detail``.
The ``bp`` command line is a thin layer over this client.
"""

__version__ = "0.1.0"

from .client import Client
from .errors import (
    APIError,
    BackpropError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobCancelled,
    JobError,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
    WaitTimeout,
)
from .jobs import parse_layers
from .resources import Dataset, Job, Model, Prediction

__all__ = [
    "APIError",
    "BackpropError",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Dataset",
    "Forbidden",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "Model",
    "NotFound",
    "PayloadTooLarge",
    "Prediction",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
    "__version__",
    "parse_layers",
]
