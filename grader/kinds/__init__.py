"""The kinds of item, registered by name: what each is, and where its checks live.

A kind (`objective`, `elementwise`, `softmax`, `fully_connected`, `input`, and the image layers
`convolution`, `max_pool`, `flatten`) is named by a spec's
classes, in cache keys and in `.used.json`: kind names are public and never renamed. Each is
declared here, in one registry, by what a spec and the sandbox need to know before anything
runs — its graded and helper methods, the forms its `gradient()` may take, its table of named,
weighted checks, the options a spec gives one of its classes, how it reads its formulas — and
implemented in a module of its own, `grader/kinds/<name>.py`, which holds its check functions
(`CHECKS`), its named mistakes with their codes (`MISTAKES`) and its truth adapters and hooks
(`LAYER`). The runner knows kinds only through
this registry (`checks_for`); an implementation is imported only for the kinds a spec uses
(`implementation`), and only once the worker is launched.

Adding a kind: write its module, add its declaration below, describe its classes in a spec.

May import: the top-level tools and `grader.assignment.check_table` (the check definitions).
Nothing here imports numpy; the kind modules (checking stage) may import every stage up to
`grader.checking`, never this registry's callers.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from grader.assignment.check_table import AUXILIARY, LAYER_CHECKS, CheckDef

LAYER_HELPERS = ("setPrevIn", "setPrevOut", "getPrevIn", "getPrevOut")


# ----------------------------------------------------------------------------- options: what a spec says of one class
# Module-level and frozen: specs travel to pool and dask workers by pickle.


@dataclass(frozen=True)
class LayerOptions:
    """A layer class's options: the gradient() forms it accepts; for an element-wise one, where its
    test points lie (`domain`) and the kinks they keep clear of."""

    gradient_forms: tuple[str, ...] = ()
    domain: tuple[float, float] = (-3.0, 3.0)
    kinks: tuple[float, ...] = ()


@dataclass(frozen=True)
class FullyConnectedOptions(LayerOptions):
    """A fully connected layer's options: how its update step reduces over the batch's observations,
    ∂J/∂W = Xᵀδ/N ("mean", the course's) or Xᵀδ ("sum")."""

    update_reduction: str = "mean"


@dataclass(frozen=True)
class AdamOptions(FullyConnectedOptions):
    """A fully connected layer graded with Adam: the constants the grader passes (where the signature
    takes them) and the number of steps t = 1…steps judged on one layer."""

    p1: float = 0.9
    p2: float = 0.999
    eta: float = 0.001
    delta: float = 1e-8
    steps: int = 3


@dataclass(frozen=True)
class InputOptions:
    """The input layer's options: the ddof of its standard deviation."""

    ddof: int = 1


@dataclass(frozen=True)
class ObjectiveOptions:
    """An objective's options: how J reduces its entries, what its targets and estimates are, and
    whether the loss of one entry is (y − ŷ)² (a diagnosis only such a loss has)."""

    reduction: str = "mean"
    targets: str = "real"
    estimates: str = "real"
    squared_error: bool = False


@dataclass(frozen=True)
class Formula:
    """How a kind defined by a formula reads its formulas: the names its definition, its named
    mistakes and its rules as the slides write them may use (names of `spec.symbols()`), the one
    its gradient is taken by, and the functions derived from it (`symbolic.role_expression`)."""

    names: tuple[str, ...]
    mistake_names: tuple[str, ...]
    rule_names: tuple[str, ...]
    variable: str
    roles: tuple[str, ...] = ("value", "derivative", "rule")


@dataclass(frozen=True)
class ConvolutionOptions:
    """A convolutional layer's options: its kernel's size, the test images' size, one image or a batch."""

    kernel: tuple[int, int] = (3, 3)
    image: tuple[int, int] = (7, 7)  # odd sizes by default
    images: str = "single"  # "single": one H×W image (the course's); "batch": N×H×W; "nchw"/"nhwc": N×1×H×W / N×H×W×1


@dataclass(frozen=True)
class PoolOptions:
    """A max-pooling layer's options: pool size and stride (as its constructor takes them), images."""

    pool: int = 2
    stride: int = 2
    image: tuple[int, int] = (7, 7)
    images: str = "single"


@dataclass(frozen=True)
class FlattenOptions:
    """A flattening layer's options: the test images (not square, so the two orders differ)."""

    image: tuple[int, int] = (5, 7)
    images: str = "single"


@dataclass(frozen=True)
class Kind:
    """A kind of item as declared: what a spec, the sandbox and the reports know of it (no numpy)."""

    name: str
    graded_methods: tuple[str, ...]
    helper_methods: tuple[str, ...]
    checks: dict[str, tuple[CheckDef, ...]]  # method → its checks, in report order
    gradient_forms: tuple[str, ...] = ()  # the shapes gradient() may take …
    default_gradient_forms: tuple[str, ...] = ()  # … and those a spec accepts unless it says otherwise
    options: type = LayerOptions  # what a spec may say of one class of this kind
    formula: Formula | None = None  # a kind whose classes a spec defines by formula
    module: str = field(default="")  # where it is implemented; default grader.kinds.<name>

    @property
    def implementation_module(self) -> str:
        return self.module or f"{__name__}.{self.name}"


#: Every kind, by its public name, in the order error messages list them.
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS:
        raise ValueError(f"kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


register(Kind(
    "objective", ("eval", "gradient"), (), options=ObjectiveOptions,
    formula=Formula(("y", "yhat", "eps"), ("y", "yhat", "eps"), ("y", "yhat", "eps"), "yhat"),
    checks={
        "eval": (
            CheckDef("values", 0.5),
            CheckDef("single_observation", 0.2),
            CheckDef("edges", 0.2),
            CheckDef("inputs_not_mutated", 0.1, AUXILIARY),
        ),
        "gradient": (
            CheckDef("values", 0.45),
            CheckDef("single_observation", 0.15),
            CheckDef("finite_differences", 0.2),
            CheckDef("edges", 0.1),
            CheckDef("inputs_not_mutated", 0.1, AUXILIARY),
        ),
    }))
register(Kind("elementwise", ("forward", "gradient", "backward"), LAYER_HELPERS, LAYER_CHECKS,
              gradient_forms=("diagonal", "jacobian"), default_gradient_forms=("diagonal", "jacobian"),
              # g may name the output in mistakes and rules (g′ = g(1 − g)), ε where the slides put it
              formula=Formula(("z",), ("z", "g"), ("z", "g", "eps"), "z", roles=("value", "derivative", "twice", "rule"))))
register(Kind("softmax", ("forward", "gradient", "backward"), LAYER_HELPERS, LAYER_CHECKS,
              gradient_forms=("jacobian", "diagonal"), default_gradient_forms=("jacobian",)))
#: The update step, W ← W − η ∂J/∂W and b ← b − η ∂J/∂b, judged from W and b read back after the
#: call (`grader/kinds/fully_connected_update.py`): the step of a batch and of one observation, two
#: rates, the bias, the step against central differences of the student's own forward; an
#: auxiliary check that the next forward uses the new weights.
UPDATE_CHECKS = (
    CheckDef("values", 0.35),
    CheckDef("single_observation", 0.15),
    CheckDef("learning_rate", 0.15),
    CheckDef("bias", 0.1),
    CheckDef("finite_differences", 0.15),
    CheckDef("next_forward", 0.1, AUXILIARY),
)
register(Kind("fully_connected", ("forward", "gradient", "backward", "updateWeights"),
              LAYER_HELPERS + ("getWeights", "setWeights", "getBiases", "setBiases"), {**LAYER_CHECKS, "updateWeights": UPDATE_CHECKS},
              gradient_forms=("matrix", "per_observation"), default_gradient_forms=("matrix", "per_observation"),
              options=FullyConnectedOptions))
#: Adam as the fully connected layer's update (the `adam` spec, grader/kinds/adam.py): W and b read
#: back after t = 1, 2, 3 calls on one layer; forward, gradient and backward are fully_connected's.
ADAM_CHECKS = (
    CheckDef("values", 0.35),
    CheckDef("single_observation", 0.15),
    CheckDef("bias", 0.15),
    CheckDef("constants", 0.15),
    CheckDef("per_layer", 0.1),
    CheckDef("next_forward", 0.1, AUXILIARY),
)
register(Kind("fully_connected_adam", ("forward", "gradient", "backward", "updateWeights"),
              LAYER_HELPERS + ("getWeights", "setWeights", "getBiases", "setBiases", "updateWeightsAdam"),
              {**LAYER_CHECKS, "updateWeights": ADAM_CHECKS},
              gradient_forms=("matrix", "per_observation"), default_gradient_forms=("matrix", "per_observation"),
              options=AdamOptions, module="grader.kinds.adam"))
#: The kinds that are a fully connected layer h = XW + b (built with W and b, trained in networks).
FULLY_CONNECTED = ("fully_connected", "fully_connected_adam")
register(Kind(
    "input", ("forward",), LAYER_HELPERS, options=InputOptions,
    checks={
        # A layer like the others: the same two auxiliary checks as a layer's forward (0.1 each); the
        # storage check's 0.1 comes from the batch values (0.4 → 0.3), so that the constant column
        # keeps the 0.2 of a layer's edges and new data (the constructor's μ, σ) its own 0.2.
        "forward": (
            CheckDef("values", 0.3),
            CheckDef("new_data", 0.2),
            CheckDef("constant_column", 0.2),
            CheckDef("single_observation", 0.1),
            CheckDef("stores_input_output", 0.1, AUXILIARY),
            CheckDef("input_not_mutated", 0.1, AUXILIARY),
        ),
    }))

# Image layers (the `cnn` spec): an H×W image (or N×H×W, the spec's `images`), driven by signature
# (grader/kinds/image_layers.py). Kernels are set with any setter the spec names, else the attribute
# that holds them (`__setattr__`/`__getattribute__`, asked only for names the object already has).
IMAGE_HELPERS = ("setPrevIn", "getPrevIn", "__setattr__", "__getattribute__")
register(Kind(
    "convolution", ("forward", "backward", "updateWeights"), IMAGE_HELPERS + ("setKernel", "getKernel"),
    options=ConvolutionOptions,
    checks={
        "forward": (
            CheckDef("values", 0.5),
            CheckDef("other_size", 0.2),
            CheckDef("smallest_image", 0.2),
            CheckDef("input_not_mutated", 0.1, AUXILIARY),
        ),
        "backward": (
            CheckDef("values", 0.5),
            CheckDef("other_size", 0.2),
            CheckDef("smallest_image", 0.2),
            CheckDef("gradIn_not_mutated", 0.1, AUXILIARY),
        ),
        "updateWeights": (
            CheckDef("values", 0.5),
            CheckDef("other_size", 0.2),
            CheckDef("learning_rate", 0.2),
            CheckDef("gradIn_not_mutated", 0.1, AUXILIARY),
        ),
    }))
register(Kind(
    "max_pool", ("forward", "backward"), IMAGE_HELPERS, options=PoolOptions,
    checks={
        "forward": (
            CheckDef("values", 0.5),
            CheckDef("overlapping_windows", 0.2),
            CheckDef("edges", 0.2),
            CheckDef("input_not_mutated", 0.1, AUXILIARY),
        ),
        "backward": (
            CheckDef("values", 0.5),
            CheckDef("overlapping_windows", 0.25),
            CheckDef("ties", 0.15),
            CheckDef("gradIn_not_mutated", 0.1, AUXILIARY),
        ),
    }))
register(Kind(
    "flatten", ("forward", "backward"), IMAGE_HELPERS, options=FlattenOptions,
    checks={
        "forward": (
            CheckDef("values", 0.5),
            CheckDef("other_size", 0.3),
            CheckDef("input_not_mutated", 0.2, AUXILIARY),
        ),
        "backward": (
            CheckDef("values", 0.5),
            CheckDef("undoes_forward", 0.3),
            CheckDef("gradIn_not_mutated", 0.2, AUXILIARY),
        ),
    }))

#: (kind, method) → the checks of such an item, in report order.
CHECK_TABLE: dict[tuple[str, str], tuple[CheckDef, ...]] = {
    (kind.name, method): checks for kind in KINDS.values() for method, checks in kind.checks.items()}


def check_names() -> set[str]:
    """Every check name of the table (what a spec's [hidden] checks may name)."""
    return {c.name for checks in CHECK_TABLE.values() for c in checks}


def implementation(name: str):
    """The module implementing kind `name` (imported on first use; numpy comes with it)."""
    return importlib.import_module(KINDS[name].implementation_module)


def checks_for(name: str, method: str) -> list[tuple[CheckDef, object]]:
    """[(CheckDef, function)] of a kind's method: the declared table, with what runs each check."""
    functions = implementation(name).CHECKS[method]
    return [(check, functions[check.name]) for check in KINDS[name].checks[method]]
