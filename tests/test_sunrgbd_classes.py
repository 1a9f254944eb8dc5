import numpy as np
import pytest

from mtbench.data.sunrgbd.classes import (
    CLASS_NAMES_13,
    CLASS_NAMES_37,
    COARSE_CLASS_OF,
    to_segmentation13,
    to_segmentation37,
)

# The published 37-to-13 table, 1-based on both sides (SceneNet, after Eigen & Fergus and Couprie et al.).
PUBLISHED_37_TO_13 = [12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5, 7, 3, 2, 6, 11, 7, 7, 7, 7, 7, 7, 6, 7, 7, 7, 7, 7]


def test_class_counts_and_order():
    assert len(CLASS_NAMES_37) == 37
    assert len(set(CLASS_NAMES_37)) == 37
    assert CLASS_NAMES_37[:3] == ("wall", "floor", "cabinet")
    assert CLASS_NAMES_37[-1] == "bag"
    assert CLASS_NAMES_13 == ("bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table", "tv", "wall", "window")


def test_coarse_table_covers_every_class():
    assert set(COARSE_CLASS_OF) == set(CLASS_NAMES_37)
    assert set(COARSE_CLASS_OF.values()) == set(CLASS_NAMES_13)


def test_coarse_table_matches_published_numbers():
    for fine_id, coarse_id in enumerate(PUBLISHED_37_TO_13, start=1):
        assert COARSE_CLASS_OF[CLASS_NAMES_37[fine_id - 1]] == CLASS_NAMES_13[coarse_id - 1], fine_id


@pytest.mark.parametrize(
    ("source", "fine", "coarse"),
    [
        (0, 255, 255),  # void
        (1, 0, 11),  # wall -> wall
        (8, 7, 11),  # door -> wall
        (13, 12, 12),  # blinds -> window
        (14, 13, 9),  # desk -> table
        (20, 19, 4),  # floor_mat -> floor
        (24, 23, 5),  # fridge -> furniture
        (25, 24, 10),  # tv -> tv
        (37, 36, 6),  # bag -> objects
    ],
)
def test_source_label_maps_by_hand(source, fine, coarse):
    labels = np.array([[source]], dtype=np.uint8)

    assert to_segmentation37(labels)[0, 0] == fine
    assert to_segmentation13(labels)[0, 0] == coarse


def test_mapped_labels_keep_shape_and_dtype():
    labels = np.arange(38, dtype=np.uint8).reshape(2, 19)

    fine = to_segmentation37(labels)
    coarse = to_segmentation13(labels)

    assert fine.dtype == np.uint8
    assert fine.shape == (2, 19)
    assert coarse.dtype == np.uint8
    assert coarse.shape == (2, 19)
    assert fine.ravel().tolist() == [255] + list(range(37))
    assert sorted(set(coarse.ravel().tolist())) == list(range(13)) + [255]
