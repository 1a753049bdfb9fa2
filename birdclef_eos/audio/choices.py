"""What ``forward`` (windows.py) may do with an audio file it cannot read, written once: windows.py
and the typed config (config.py, params.yaml `extract.on_bad_audio`) both import it from here.

Why a module of its own: windows.py ships inside the Kaggle model folder (bundle/infer.py's import
closure), where pydantic may not be imported, and it imports numpy and pandas, which stages/schema.py
(loaded by every stage) does not. So this module imports nothing: it ships with windows.py and costs
the schema nothing.
"""

BAD_AUDIO = ("error", "skip")  # stop, naming the file | leave the file out and list it
