"""What every section of the summary.json model is built from: a closed model (no keys
beyond those declared) and the annotated number types (milliseconds, rates, seconds,
counts).

Place in the pipeline: the base of ``analysis.summary_model`` and its section modules.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Closed", "Count", "Ms", "Rate", "Seconds"]

Ms = Annotated[float | None, Field(description="milliseconds, 3 decimals")]
Rate = Annotated[float | None, Field(ge=0, description="per second")]
Seconds = Annotated[float | None, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")
