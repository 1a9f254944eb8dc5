"""SUN RGB-D, prepared from the published SUNRGBD.zip and SUNRGBDtoolbox.zip.

10335 indoor frames from four depth sensors (kv1, kv2, realsense, xtion),
labelled with 37 classes and split 5285 train / 5050 test by the toolbox's
``allsplit.mat``. ``build.prepare_sunrgbd`` writes the dense format of
``mtbench.data.dense_format`` with the fields ``image``, ``segmentation13``,
``segmentation37`` and ``depth``, and ``load_dense_split(build.sunrgbd_folder(),
split)`` reads a split back.

One module per source file: ``meta`` (SUNRGBDMeta.mat), ``split``
(allsplit.mat), ``seg_mat`` (SUNRGBD2Dseg.mat), ``depth_png`` and
``rgb_image`` (the frames). ``classes`` contains the class tables, ``layout``
the file locations, ``resize`` the resampling to the benchmark sizes and
``defaults`` the default options. This file imports none of them, so that
the command line can import ``defaults`` without loading h5py and scipy.
"""
