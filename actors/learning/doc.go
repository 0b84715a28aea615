// Package learning is the home of the pure-Go machine learning that Hearth's
// sites run in federated learning. It holds no code itself; the work is split
// by role into four packages:
//
//   - model: named float32 tensors (the unit that travels between sites and
//     the aggregator) and WeightedSum, a FedAvg accumulator whose memory
//     does not grow with the number of sites (the trainers' simulated
//     federations use it; the server aggregates with actors/aggregator).
//   - dataset: the real public datasets embedded into the binary (optdigits,
//     WDBC, MNIST t10k, Adult), their fixed train/test splits and feature
//     scaling, Dirichlet label-skew partitioning across sites, and the
//     checksummed binary file a site keeps its local partition in.
//   - trainer: the built-in trainers (logistic regression and a ReLU MLP) on
//     gonum's BLAS, deterministic given a seed, with the recommended federated
//     defaults per dataset, and DP-SGD.
//   - dp: differential privacy's arithmetic: the RDP accountant of the
//     subsampled Gaussian mechanism, a site's budget round by round, the
//     noise-multiplier search, clipping and secret Gaussian noise.
package learning
