"""ONNX graphs of the streaming stages: what each graph computes (:mod:`.encoder_graph`: the
encoder step with both CTC heads; :mod:`.mt_graph`: the MT decoder's step; :mod:`.unit_graphs`:
T2U's and the unit decoder's steps), the metadata written
into it and checked when it is loaded (:mod:`.metadata`), and the export itself with its int8
variant (:mod:`.onnx_files`). docs/export.md is the manual."""
