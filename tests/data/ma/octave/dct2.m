function b = dct2(a)
% Stand-in for MATLAB's dct2 on a matrix: orthonormal 2-D DCT-II, C * A * D'.
[m, n] = size(a);
b = dctmtx_(m) * double(a) * dctmtx_(n)';
end
function c = dctmtx_(n)
[k, j] = ndgrid(0:n-1, 0:n-1);
c = sqrt(2/n) * cos(pi * (2*j + 1) .* k / (2*n));
c(1, :) = c(1, :) / sqrt(2);
end
