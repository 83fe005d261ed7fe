"""Message authentication: the schemes' real signing and verification, and their measured cost.

Place in the pipeline: below the simulator and the live generator and consumers, which
import ``crypto`` to sign and verify for real and ``costs`` for what verifying costs.
"""
