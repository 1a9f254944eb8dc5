"""Semantic segmentation metrics: mean intersection over union (mIoU) and pixel accuracy.

Both come from one C x C confusion matrix. ``update`` adds each batch to it
and ``compute`` derives the scores once, so they depend neither on the batch
size nor on the batch order. Pixels whose target is ``ignore_index`` count in
no cell of the matrix, so they add to neither the intersection nor the union
of any class.

The IoU of class c is TP_c / (TP_c + FP_c + FN_c). mIoU is the mean over the
classes that occur in the target or in the prediction. A class absent from
both has an undefined IoU (0 / 0) and is left out of the mean. Pixel accuracy
is the fraction of labelled pixels whose predicted class is right. Both are
higher-is-better.
"""

import torch

DEFAULT_IGNORE_INDEX = 255


class SegmentationMetrics:
    """A confusion matrix over ``num_classes`` classes and the scores derived from it.

    >>> metrics = SegmentationMetrics(num_classes=3)
    >>> metrics.update(torch.tensor([0, 2]), torch.tensor([0, 0]))
    >>> metrics.compute()
    {'miou': 0.25, 'pixel_accuracy': 0.5}
    """

    def __init__(self, num_classes: int, ignore_index: int = DEFAULT_IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"SegmentationMetrics needs at least one class, got num_classes={num_classes}.")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class index of the {num_classes} classes.")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # Rows are target classes, columns predicted classes.
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of predicted class indices and target class indices of the same shape.

        Raises ValueError when the shapes differ or an index lies outside
        0..C-1 (targets may also be ``ignore_index``).
        """
        if predicted.shape != target.shape:
            raise ValueError(f"SegmentationMetrics expects predictions and targets of one shape, got {tuple(predicted.shape)} and {tuple(target.shape)}.")
        predicted = predicted.detach().reshape(-1).to("cpu", torch.int64)
        target = target.detach().reshape(-1).to("cpu", torch.int64)

        labelled = target != self.ignore_index
        predicted, target = predicted[labelled], target[labelled]
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= self.num_classes):
            raise ValueError(f"Target class indices must lie in 0..{self.num_classes - 1} or be {self.ignore_index}, got {target.min()}..{target.max()}.")
        if predicted.numel() and (int(predicted.min()) < 0 or int(predicted.max()) >= self.num_classes):
            raise ValueError(f"Predicted class indices must lie in 0..{self.num_classes - 1}, got {predicted.min()}..{predicted.max()}.")

        cells = torch.bincount(target * self.num_classes + predicted, minlength=self.num_classes**2)
        self.confusion += cells.reshape(self.num_classes, self.num_classes)

    def compute(self) -> dict[str, float]:
        """Return ``miou`` and ``pixel_accuracy``; raise ValueError when no labelled pixel was seen."""
        confusion = self.confusion.double()
        labelled = float(confusion.sum())
        if labelled == 0:
            raise ValueError("SegmentationMetrics.compute() needs at least one labelled pixel; every pixel so far was ignored.")

        true_positives = confusion.diagonal()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - true_positives
        present = union > 0
        iou = true_positives[present] / union[present]
        return {"miou": float(iou.mean()), "pixel_accuracy": float(true_positives.sum()) / labelled}
