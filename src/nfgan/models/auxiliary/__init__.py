"""Pretrained auxiliary networks, read offline from registry packages or shipped safetensors.

Training-loss nets (``feature_nets``: dlib's ResNet, VGG-Face and Light CNN from the user's files) and the
independent evaluators' nets (``embedders``: faceres, faceres_deep; ``expression_fer``: mini-XCEPTION; ``expression_faceapi``:
FaceExpressionNet), with the TF.js graph runner they share (``tfjs_graph``) and dlib's ResNet port
(``dlib_resnet``)."""
