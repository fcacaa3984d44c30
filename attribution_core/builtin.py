"""The built-in parts of the registry, wired in one place: ``registry`` reads this module the first time it is
asked for a method, a space or a judge, before it loads plug-ins. Everything is named by "module:attribute" and
imported on first use, so ``import attribution_core`` imports no method, no judge and no demo.

A new built-in method is one package plus one line here (and, when it ships spaces, one provider line).
"""

from __future__ import annotations

#: method name -> (the module that registers its ``Attributor``, where its ``Options`` dataclass lives)
METHODS: dict[str, tuple[str, str]] = {
    "feature": ("attribution_core.features.attributor", "attribution_core.features.attributor:FeatureOptions"),
    "unlearning": ("attribution_core.unlearning.attributor", "attribution_core.unlearning.config:UnlearningOptions"),
    "distilled": ("attribution_core.distill.attributor", "attribution_core.distill.config:DistilledOptions"),
}

#: functions that list spaces, called on every look-up (their paths follow the project root), feature spaces first
SPACE_PROVIDERS: tuple[str, ...] = (
    "attribution_core.attribute.spaces:released_spaces",
    "attribution_core.demo.spaces:all_demo_spaces",
    "attribution_core.demo.counterfactual:base_spaces",
)

#: judge name -> the module that registers it
JUDGES: dict[str, str] = {
    "abc": "attribution_core.judges.abc.judge",
    "ground-truth": "attribution_core.judges.ground_truth_judge",
    "leave-k-out": "attribution_core.judges.counterfactual.judges",
    "lds": "attribution_core.judges.counterfactual.judges",
}

#: testbed name -> "module:Class" of the ``Testbed`` the counterfactual judges retrain on
TESTBEDS: dict[str, str] = {
    "demo-photos": "attribution_core.demo.testbed:PhotoTestbed",
    "finetune": "attribution_core.demo.shapes_testbed:ShapesTestbed",
}
