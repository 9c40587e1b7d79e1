"""torchvision's Faster R-CNN (ResNet-50-FPN, COCO): the top-N detected boxes as image tokens, "bottom-up" features.

Anderson et al. 2018 (and seed 003's "embeddings from object detection models") let the decoder attend
over the regions a detector finds instead of a fixed grid: a token is an object or a part of one.

Tokens [N, 1029], N = ``--grid`` (default 36, Anderson et al.'s fixed count): per box, the 1024-d
``roi_heads.box_head`` output on its MultiScaleRoIAlign features, then its geometry, the 5 numbers
``BOX_GEOMETRY`` (x1/W, y1/H, x2/W, y2/H and its share of the image's area, all in [0, 1] of the
image the encoder sees); ``pooled`` [1024] is the mean of the N box features. The geometry is
recorded in ``describe()["options"]["box_geometry"]``, which is how training recognises a cache whose
tokens end in box positions (``model.token_positions=boxes``).

Boxes follow Anderson et al.'s generate_tsv.py, class-agnostic: the detector runs as torchvision runs
it (transform, backbone, RPN, box head, box predictor), every RPN proposal is scored by its most
probable foreground class, NMS at the box head's own IoU (0.5) keeps the best of overlapping
proposals, and the N best survivors by score are the tokens. The box score threshold (0.05) is not
applied, and when fewer than N survive, the best suppressed proposals follow, by score: so random
weights still give N boxes and real weights give their detections first. Like Anderson et al., a
box is the proposal itself, not its class-specific regression, so each token's feature is exactly
the box head's output on the box its geometry describes. An image with fewer than N proposals in
all (torchvision keeps up to 1000) gets zero tokens after them.

Preprocessing: the shorter side resized to ``size`` (800, the min_size these weights were trained
at), a centre crop of ``size`` x ``size`` (an extraction batch holds one size) and ImageNet
normalisation, all recorded in the cache key like every encoder's. The detector's own transform is
set to that size and to no normalisation, so it only batches: the image it sees is exactly the
recorded one. At 800 px that is about 4 s an image on 2 CPU cores (docs/region_features.md): a GPU job.

Weights: ``DEFAULT`` (= ``COCO_V1``, COCO-trained, through the same download path as every
torchvision encoder), ``random[:SEED]`` or a local state dict of the same model. Anderson et al.'s
own features came from a Visual Genome-trained detector (1600 object classes), not this one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import nms

from pipeline.encoders.base import FrozenEncoder
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import torchvision_weights
from pipeline.encoders.weights import WeightsSpec, load_strict, seeded
from pipeline.errors import CapcacheError

ARCH = "fasterrcnn_resnet50_fpn"  # torchvision's name: its weights enum and download
BOX_FEATURE_DIM = 1024  # TwoMLPHead's representation size
BOX_GEOMETRY = ("x1/W", "y1/H", "x2/W", "y2/H", "area/(W*H)")  # the last numbers of every token
DEFAULT_BOXES = 36  # Anderson et al.'s fixed number of regions
DEFAULT_SIZE = 800  # the min_size FasterRCNN_ResNet50_FPN_Weights were trained and evaluated at
PROPOSALS = 1000  # RPN proposals kept per image at test time (torchvision's default): the most N can be
COCO_CLASSES = 91  # the weights' classifier, background included


class FasterRCNNRegions(FrozenEncoder):
    def __init__(self, weights: WeightsSpec, grid: int | None, size: int = DEFAULT_SIZE):
        boxes = grid or DEFAULT_BOXES
        if boxes > PROPOSALS:
            raise CapcacheError(f"fasterrcnn_regions gives at most {PROPOSALS} boxes (its RPN proposals); "
                                f"pass --grid {PROPOSALS} or fewer")
        state, source, weights, _ = torchvision_weights(ARCH, weights)
        with seeded(int(weights.value) if weights.kind == "random" else 0):
            # built as torchvision builds it for published weights (frozen batch norm, eps 0 for COCO_V1),
            # so their state dict loads strictly; the transform only batches (see the module docstring)
            backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=0)
            model = FasterRCNN(backbone, num_classes=COCO_CLASSES, min_size=size, max_size=size,
                               image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0], rpn_post_nms_top_n_test=PROPOSALS)
        overwrite_eps(model, 0.0)
        if state is not None:
            load_strict(model, state, source)
        prep = Preprocessing(resize=size, crop=size)  # bilinear, ImageNet mean and std
        super().__init__("fasterrcnn_regions", weights, prep, feature_dim=BOX_FEATURE_DIM + len(BOX_GEOMETRY),
                         grid=boxes, options={
                             "boxes": boxes, "box_feature": "roi_heads.box_head", "box_geometry": list(BOX_GEOMETRY),
                             "selection": f"rpn proposals ({PROPOSALS}) scored by their best foreground class, "
                                          f"class-agnostic nms {model.roi_heads.nms_thresh}, no score threshold, "
                                          "suppressed proposals fill up"})
        self.pooled_dim = BOX_FEATURE_DIM
        self.boxes = boxes  # N
        self.model = model  # the whole detector, so its published checkpoint loads strictly

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, S, S] -> (tokens [B, N, 1024 + 5], pooled [B, 1024]: the mean box feature)."""
        m, heads = self.model, self.model.roi_heads
        batch, _ = m.transform(list(images))  # ImageList: tensors [B, 3, S, S] padded to /32; image_sizes unpadded
        features = m.backbone(batch.tensors)  # FPN levels "0".."3", "pool": [B, 256, S/4 .. S/64]
        proposals, _ = m.rpn(batch, features)  # per image [P, 4] (P <= 1000) in pixels, best objectness first
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, batch.image_sizes))  # [sum P, 1024]
        class_logits, _ = heads.box_predictor(box_features)  # [sum P, 91]
        scores = class_logits.softmax(-1)[:, 1:].amax(-1)  # [sum P]: the best foreground class, background left out
        counts = [len(p) for p in proposals]
        tokens = []
        for boxes, feats, score, (h, w) in zip(proposals, box_features.split(counts), scores.split(counts),
                                               batch.image_sizes):
            keep = top_boxes(boxes, score, heads.nms_thresh, self.boxes)  # [n], n = min(N, P)
            token = torch.cat([feats[keep], box_geometry(boxes[keep], h, w).to(feats.dtype)], 1)  # [n, 1029]
            tokens.append(F.pad(token, (0, 0, 0, self.boxes - len(keep))))  # [N, 1029], zero rows past P
        tokens = torch.stack(tokens)  # [B, N, 1029]
        return tokens, tokens[..., :BOX_FEATURE_DIM].mean(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, N, 1029]
        return self.encode(images)[0]


def top_boxes(boxes: torch.Tensor, scores: torch.Tensor, iou: float, n: int) -> torch.Tensor:
    """boxes [P, 4], scores [P] -> indices [min(n, P)]: NMS survivors by score, then the suppressed by score.

    ``nms`` returns its survivors best first; the stable sort keeps equal scores in proposal order, so
    the choice is the same in every run.
    """
    kept = nms(boxes, scores, iou)  # [K]
    suppressed = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    suppressed[kept] = False
    rest = suppressed.nonzero().squeeze(1)  # [P - K]
    rest = rest[scores[rest].argsort(descending=True, stable=True)]
    return torch.cat([kept, rest])[:n]


def box_geometry(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """boxes [n, 4] (x1, y1, x2, y2 in pixels, inside the image) -> [n, 5]: BOX_GEOMETRY, each in [0, 1]."""
    scale = boxes.new_tensor([width, height, width, height])
    corners = boxes / scale  # [n, 4]
    area = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])  # [n]
    return torch.cat([corners, area[:, None]], 1)


register("fasterrcnn_regions", default_weights="DEFAULT")(FasterRCNNRegions)
