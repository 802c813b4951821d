"""The tabular lab's refusals: one ApplicationError family, codes from ml_core.tabular.io."""

from __future__ import annotations

from apps.core.errors import ApplicationError


class TabularError(ApplicationError):
    code = "tabular_error"
    http_status = 400
    status_by_code = {"file_too_large": 413, "forbidden": 403, "not_found": 404}

    @classmethod
    def from_data_error(cls, exc) -> TabularError:
        """An ml_core.tabular.io.TabularDataError (plain Python) as the web's error."""
        return cls(exc.message, code=exc.code)
