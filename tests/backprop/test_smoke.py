import numpy as np

import backprop


def test_xor_trains_and_round_trips() -> None:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    y = np.array([[0], [1], [1], [0]], float)
    spec = {
        "network": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1}]},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 300,
                     "batch_size": "full", "seed": 0},
    }
    model = backprop.train(spec, X, y)
    assert np.allclose(model.predict(X), y, atol=0.2)
    again = backprop.Model.from_bytes(model.to_bytes())
    assert np.array_equal(again.predict(X), model.predict(X))
