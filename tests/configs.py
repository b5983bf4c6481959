"""The configuration database: every optimizer and variant the generic tests cross.

Each entry is ``(id, class, kwargs)``. Generic tests run every entry over both
backends and dtypes; add a variant here and it is checked everywhere.
"""

import rmsopt

R, S, AG, AD, A = rmsopt.RMSprop, rmsopt.SGD, rmsopt.AdaGrad, rmsopt.AdaDelta, rmsopt.Adam

CONFIGS = [
    ("rmsprop", R, dict(lr=0.01)),
    ("rmsprop-centered", R, dict(lr=0.01, centered=True)),
    ("rmsprop-momentum", R, dict(lr=0.01, momentum=0.9)),
    ("rmsprop-nesterov", R, dict(lr=0.01, momentum=0.9, nesterov=True)),
    ("rmsprop-centered-momentum", R, dict(lr=0.01, centered=True, momentum=0.5)),
    ("rmsprop-lr-in-momentum", R, dict(lr=0.01, momentum=0.9, lr_in_momentum=True)),
    ("rmsprop-nesterov-lr-in", R, dict(lr=0.01, momentum=0.9, nesterov=True, lr_in_momentum=True)),
    ("rmsprop-bias-correction", R, dict(lr=0.01, bias_correction=True)),
    ("rmsprop-centered-bias", R, dict(lr=0.01, centered=True, bias_correction=True)),
    ("rmsprop-eps-in-sqrt", R, dict(lr=0.01, eps_in_sqrt=True, eps=1e-6)),
    ("rmsprop-weight-decay", R, dict(lr=0.01, weight_decay=0.1)),
    ("rmsprop-decoupled", R, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("rmsprop-maximize", R, dict(lr=0.01, maximize=True)),
    ("rmsprop-clip-value", R, dict(lr=0.01, clip_value=0.5)),
    ("rmsprop-clip-norm", R, dict(lr=0.01, clip_norm=1.0)),
    ("rmsprop-clip-norm-and-value", R, dict(lr=0.01, clip_norm=1.0, clip_value=0.3)),
    ("rmsprop-torch", R, dict(convention="torch")),
    ("rmsprop-keras", R, dict(convention="keras", momentum=0.9, centered=True)),
    ("rmsprop-tf1", R, dict(convention="tf1", momentum=0.5)),
    ("sgd", S, dict(lr=0.01)),
    ("sgd-momentum", S, dict(lr=0.01, momentum=0.9)),
    ("sgd-nesterov", S, dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("adagrad", AG, dict(lr=0.1)),
    ("adagrad-keras", AG, dict(lr=0.1, eps_in_sqrt=True, eps=1e-7, initial_accumulator_value=0.1,
                               lr_decay=0.001)),
    ("adadelta", AD, dict()),
    ("adam", A, dict(lr=0.01)),
    ("adam-amsgrad", A, dict(lr=0.01, amsgrad=True, clip_norm=2.0)),
    ("adamw", rmsopt.AdamW, dict(lr=0.01)),
    ("lion", rmsopt.Lion, dict(lr=0.01)),
    ("lion-decay-clip", rmsopt.Lion, dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1,
                                          clip_norm=2.0)),
    ("adabelief", rmsopt.AdaBelief, dict(lr=0.01)),
    ("adabelief-decay-clip", rmsopt.AdaBelief, dict(lr=0.01, eps=1e-8, eps_root=1e-10,
                                                    weight_decay=0.1, clip_value=0.5)),
    ("lion-l2", rmsopt.Lion, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=False)),
    ("laprop", rmsopt.LaProp, dict(lr=0.01)),
    ("laprop-decay-clip", rmsopt.LaProp, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8,
                                              weight_decay=0.1, clip_norm=2.0)),
    ("laprop-l2", rmsopt.LaProp, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=False)),
]

IDS = [c[0] for c in CONFIGS]
