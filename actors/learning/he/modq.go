package he

// Arithmetic mod Q on coefficient vectors, for the steps that need no
// Lattigo ring: sums of ciphertexts, of key shares and of decryption shares.

// addMod sets dst[i] = dst[i] + src[i] mod Q; both inputs below Q.
func addMod(dst, src []uint64) {
	src = src[:len(dst)]
	for i, v := range src {
		s := dst[i] + v
		if s >= Q {
			s -= Q
		}
		dst[i] = s
	}
}

// reduce brings every coefficient of p below Q.
func reduce(p []uint64) {
	for i, v := range p {
		if v >= Q {
			p[i] = v % Q
		}
	}
}
