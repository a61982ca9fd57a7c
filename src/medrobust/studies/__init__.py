"""Multi-run studies: the MRNet protocol (plane models fused per task) and the FGSM-augmentation grid."""
