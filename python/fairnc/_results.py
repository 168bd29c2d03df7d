"""Results: placeholder."""
import json
class _R:
    @classmethod
    def _from_json(cls, raw):
        r = cls(); r._raw = json.loads(raw); return r
class Audit(_R): pass
class CollapseResult(_R): pass
class DebiasResult(_R): pass
class EvalResult(_R): pass
class GlueResult(_R): pass
