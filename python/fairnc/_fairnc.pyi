"""The native core of fairnc (Rust, PyO3). Private: use the functions of ``fairnc``, which wrap
these. Options are a JSON object of config fields; results are JSON strings; arrays are
``(bytearray of little-endian values, shape)``."""

from typing import List, Optional, Tuple, Union

__version__: str

Array = Tuple[bytearray, List[int]]

class Model:
    @property
    def name(self) -> str: ...
    @property
    def seed(self) -> int: ...
    def info_json(self) -> str: ...
    def hidden(
        self,
        texts: List[str],
        max_len: Optional[int] = None,
        truncate: bool = True,
        batch_size: int = 64,
        features: str = "hidden",
        progress: bool = True,
    ) -> Tuple[Array, Array, Array]: ...

def load(name: str, seed: int = 0, progress: bool = True) -> Model: ...
def defaults(stage: str) -> str: ...
def collapse(model: Model, options: str, output: Optional[str] = None, overwrite: bool = False, progress: bool = True) -> str: ...
def evaluate(model: Model, options: str, output: Optional[str] = None, progress: bool = True) -> str: ...
def audit(model: Model, options: str, output: Optional[str] = None, progress: bool = True) -> str: ...
def debias(model: Union[Model, str], options: str, output: str, mode: str = "new", progress: bool = True) -> str: ...
def glue(
    model: Union[Model, str],
    options: str,
    output: str,
    compare: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> str: ...
