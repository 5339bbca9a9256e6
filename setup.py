"""Only what pyproject.toml cannot say: the optional C helper for box decoding (videomae/video/jpegbox.py).

`optional=True`: without a C compiler or libjpeg's headers the install goes on without it, and training decodes whole
frames (the same pixels, slower)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("videomae.video._jpegbox", ["videomae/video/_jpegbox.c"], libraries=["jpeg"],
                             extra_compile_args=["-O2"], optional=True)])
