function y = rgb2ycbcr_matlab(rgb)
% Y of MATLAB's rgb2ycbcr on uint8 RGB: T = (1/255) * [65.481 128.553 24.966], imlincomb(T(1), R, T(2), G,
% T(3), B, 16) computed in double and rounded to uint8 (BT.601 luma, 16..235).
x = double(rgb); t = (1/255) * [65.481 128.553 24.966];
y = uint8(((x(:,:,1)*t(1) + x(:,:,2)*t(2)) + x(:,:,3)*t(3)) + 16);
end
