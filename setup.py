"""Packaging for trun: a Python workflow library with a central scheduler (trund)."""
import os

from setuptools import find_namespace_packages, setup

here = os.path.abspath(os.path.dirname(__file__))
about = {}
with open(os.path.join(here, "trun", "__version__.py")) as f:
    exec(f.read(), about)

with open(os.path.join(here, "README.rst")) as f:
    long_description = f.read()

extras = {
    "toml": ["tomli>=1.1; python_version<'3.11'"],
    "prometheus": ["prometheus-client>=0.17"],
    "datadog": ["datadog>=0.44"],
    "postgres": ["psycopg[binary]>=3.1"],
    "history": ["SQLAlchemy>=2.0"],
    "jsonschema": ["jsonschema>=4"],
    "docs": ["sphinx>=7"],
    # Drives Debian's chromium (apt-get install chromium); never run `playwright install`.
    "browser-test": ["playwright>=1.40"],
}
extras["test"] = [
    "pytest>=7",
    "pytest-timeout>=2",
    "pytest-xdist>=3",
    "hypothesis>=6",
    "aiosmtpd>=1.4",
    "psutil>=5",
    "pygments",
    "moto[ses,sns]>=5",
    "ruff",
    "matplotlib",  # the benchmark plot script's smoke test (benchmarks/plot.py)
] + extras["toml"] + extras["jsonschema"] + extras["history"] + extras["prometheus"] + extras["datadog"] \
    + extras["postgres"] + extras["browser-test"]

setup(
    name="trun",
    version=about["__version__"],
    description="Workflow library: steps, targets and a central scheduler that never runs a step twice",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    python_requires=">=3.10",
    # Namespace discovery: the data directories (static/, templates/) count as packages too,
    # which is what setuptools expects of importable directories that ship files.
    packages=find_namespace_packages(include=["trun", "trun.*"]),
    package_data={"trun": ["py.typed", "static/**/*", "templates/*"]},
    include_package_data=True,
    install_requires=[
        "tornado>=6,<7",
        "python-daemon>=3",
        "python-dateutil>=2.8",
        "tenacity>=8",
        "typing-extensions>=4.6",
    ],
    extras_require=extras,
    entry_points={
        "console_scripts": [
            "trun=trun.cmdline:trun_run",
            "trund=trun.cmdline:trund",
            "trun-deps=trun.tools.deps:main",
            "trun-deps-tree=trun.tools.deps_tree:main",
            "trun-grep=trun.tools.trun_grep:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Typing :: Typed",
    ],
)
