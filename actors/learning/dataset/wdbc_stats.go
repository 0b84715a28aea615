package dataset

// The WDBC scaling constants: the mean and population standard deviation of
// each of the 30 features over the train split (456 rows, SplitSeed), to six
// significant digits, in wdbc.names order (radius, texture, perimeter, area,
// smoothness, compactness, concavity, concave points, symmetry, fractal
// dimension; as mean, standard error, worst). They are shipped as constants
// so that every site scales its local data identically; a test checks them
// against the train split. Functions, not variables, so nothing can alter
// them.
func wdbcMean(feature int) float64 {
	return [wdbcFeatures]float64{
		14.0863, 19.2585, 91.6486, 651.652, 0.0963609, 0.103837, 0.0883195, 0.04864, 0.180366, 0.0629244,
		0.398955, 1.1996, 2.81169, 39.753, 0.00709625, 0.02523, 0.0319764, 0.0117547, 0.0203211, 0.00381133,
		16.2247, 25.6752, 106.806, 876.884, 0.13292, 0.25446, 0.274042, 0.115327, 0.290034, 0.0845089,
	}[feature]
}

func wdbcStd(feature int) float64 {
	return [wdbcFeatures]float64{
		3.53799, 4.26712, 24.2813, 355.324, 0.0137992, 0.0510941, 0.0781724, 0.0380804, 0.0272207, 0.00709633,
		0.276108, 0.534213, 1.98892, 46.8527, 0.00298285, 0.0171129, 0.0309411, 0.00590807, 0.00779737, 0.00260323,
		4.86089, 6.13476, 33.4549, 576.626, 0.0226766, 0.155302, 0.209274, 0.0651918, 0.0626171, 0.0184668,
	}[feature]
}
