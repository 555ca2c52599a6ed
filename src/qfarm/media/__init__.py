"""Media: the ffmpeg a node runs, what a source holds, the presets, and output checks.

Planning (on the controller) reads sources with PyAV and never runs ffmpeg; encoding (on the
nodes) runs ffmpeg as a supervised process. Both sides use the same ffmpeg build, from the
imageio-ffmpeg wheel pinned in pyproject.toml, unless ``QFARM_FFMPEG`` names another.
"""
