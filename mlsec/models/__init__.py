"""Model files: what a file is, the containers that wrap it, and the checks of each format.

Shape of the package (data flows top to bottom; nothing here loads, imports or renders what
it reads):

``registry``
    The format registry: one :class:`~mlsec.models.registry.ModelFormat` row per format
    (how content recognises it, the names its loaders accept, whether it carries pickles,
    whether the container walk opens it, whether it is weights for the BOM, its leaf check,
    its modelscan route). Sniffing, the BOM's "is this a model" (``is_weight_file``,
    ``ALWAYS_WEIGHTS``/``MAYBE_WEIGHTS``/``WEIGHT_EXTENSIONS``) and modelscan's routing
    (``MODELSCAN_ROUTES``) are derived from it.
``probe``
    Is this a pickle? A bounded decode of the first opcodes with the scanner's own opcode
    machine (valid arguments, consistent stack and MARKs), whatever the name or first byte.
    A file named like a pickle whose content is none gets MLS120 (info), never MLS100.
``sniff``
    The walker's file kinds: magic numbers in registry order, then the pickle probe, then
    names where content cannot tell (protobufs), then text or binary; Git LFS pointers; the
    Keras-archive test.
``containers``
    The one container walk (analyzer ``models``): zip, tar, gzip/bz2/xz/lzma/lz4/zstd/zlib,
    joblib (inline arrays, the old ``ZF`` zfile), NumPy ``.npy``/``.npz``, PyTorch zip,
    legacy tar and sequence, TorchScript, nested archives and payloads handed to nested
    loaders; pickle streams go to the opcode machine and their imports are judged; every
    leaf member in another format goes to the same checks as a top-level file.
``checks``
    The leaf format checks (analyzer ``model-formats``; safetensors, GGUF, ONNX, Keras,
    SavedModel, chat-template files): :meth:`FormatChecks.dispatch` asks the registry which
    check a file or member gets.
``torchscript``
    MLS107: what TorchScript's serializer writes in ``code/`` files, and what it never does.

Adding a format: a parser under :mod:`mlsec.formats`, a check method ``_<name>`` on
:class:`mlsec.models.checks.FormatChecks`, one registry row, its rules under ``rules/``
(ids MLS120-MLS139 and MLS158-MLS169 are this package's), a generated fixture.
"""
