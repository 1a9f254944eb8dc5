"""NYUv2 (NYU Depth V2, labeled subset) for the dense multi-task benchmark: segmentation, depth and surface normals.

Sources: the official files (``official_source``), the preprocessed .npy
copy of MTAN, LibMTL and Nash-MTL (``preprocessed_npy``) and its Hugging Face
parquet mirror (``parquet_mirror``). ``build.build_nyuv2`` turns any of them
into the prepared dense format of ``mtbench.data.dense_format``.
"""
