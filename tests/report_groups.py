"""The ``group`` objects of config.json that report tests write: fixed 0.9 and 0.95, a
pair, its swap and their shared control."""

from __future__ import annotations

FIXED = {"name": "m0.9", "optimizer": "sgd", "momentum": 0.9, "momentum_above": None,
         "momentum_below": None, "role": "paper", "matched_to": None}
FIXED95 = {**FIXED, "name": "m0.95", "momentum": 0.95}
PAIR = {"name": "m0.95_0.9", "optimizer": "lcam", "momentum": None, "momentum_above": 0.9,
        "momentum_below": 0.95, "role": "paper", "matched_to": None}
SWAP = {**PAIR, "name": "m0.9_0.95", "momentum_above": 0.95, "momentum_below": 0.9}
CONTROL = {**FIXED, "name": "control-m0.933333", "momentum": 0.9333333333333333,
           "role": "control", "matched_to": ["m0.95_0.9", "m0.9_0.95"]}
