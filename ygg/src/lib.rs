//! A native Yggdrasil 0.5 node (ironwood wire protocol), work in progress.
